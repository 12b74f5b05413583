"""Property tests: on strings drawn from each shipped regex and schema, and on mutations of
them, the Outlines and llguidance backends accept and reject the same strings (byte level)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from llmos_grammar.constraints import plan
from llmos_grammar.constraints.differential import disagreements
from llmos_grammar.errors import Location
from llmos_grammar.ir import GrammarSource, GrammarState, TextState
from llmos_grammar.spec.check import check_file

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


Case = tuple[str, GrammarSource, str | None]


def shipped_constraints() -> list[Case]:
    """(name, source, close) of every example state and benchmark schema (closed by "[/J]")
    that Outlines enforces."""
    found: list[Case] = []
    for spec in sorted((ROOT / "examples").glob("*/spec.yaml")):
        machine = check_file(str(spec)).machine
        assert machine is not None, spec
        for name, state in machine.states.items():
            if isinstance(state, GrammarState | TextState) and state.constraint is not None:
                close = state.close if isinstance(state, GrammarState) else None
                found.append((f"{spec.parent.name}.{name}", state.constraint, close))
    for path in sorted((ROOT / "benchmarks" / "schemas").glob("*.json")):
        schema = json.loads(path.read_text())
        schema.pop("examples", None)
        source = GrammarSource("json_schema", json.dumps(schema), Location(path.name))
        found.append((path.stem, source, "[/J]"))
    return [c for c in found if c[1].kind != "lark" and plan(c[1], c[2]).backend == "outlines"]


CONSTRAINTS = shipped_constraints()
REGEXES = [c for c in CONSTRAINTS if c[1].kind == "regex"]
SCHEMAS = [c for c in CONSTRAINTS if c[1].kind == "json_schema"]


def test_the_shipped_set_is_broad() -> None:
    assert len(REGEXES) >= 2 and len(SCHEMAS) >= 20


def mutated(text: str, data: st.DataObject) -> list[str]:
    """`text`, and `text` with one character dropped, doubled or inserted."""
    out = [text]
    if text:
        i = data.draw(st.integers(0, len(text) - 1))
        out += [text[:i] + text[i + 1 :], text[:i] + text[i] + text[i:]]
    j = data.draw(st.integers(0, len(text)))
    extra = data.draw(st.sampled_from(list('a0 "{}[],:\\-./\n\t')))
    out.append(text[:j] + extra + text[j:])
    return out


@pytest.mark.parametrize(("name", "source", "close"), REGEXES, ids=[c[0] for c in REGEXES])
@SETTINGS
@given(data=st.data())
def test_regex_strings_and_mutations_agree(
    name: str, source: GrammarSource, close: str | None, data: st.DataObject
) -> None:
    text = data.draw(st.from_regex(source.text, fullmatch=True).filter(lambda t: len(t) < 200))
    assert disagreements(source, close, mutated(text, data)) == []


@pytest.mark.parametrize(("name", "source", "close"), SCHEMAS, ids=[c[0] for c in SCHEMAS])
@SETTINGS
@given(data=st.data())
def test_schema_instances_and_mutations_agree(
    name: str, source: GrammarSource, close: str | None, data: st.DataObject
) -> None:
    value = data.draw(from_schema(json.loads(source.text)))
    compact = data.draw(st.booleans())
    text = json.dumps(value, separators=(",", ":") if compact else None, ensure_ascii=False)
    assert disagreements(source, close, mutated(text, data)) == []
