"""Property tests: on strings drawn from each shipped regex and schema, and on mutations of
them, the Outlines and llguidance backends accept and reject the same strings (byte level).

JSON values come from `values(schema)` below: hypothesis-jsonschema 0.23 does not run with
this hypothesis (6.170).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    that `auto` gives to Outlines: there the two backends must enforce the same language."""
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
    # the others fall back to llguidance (with the reason), so there is nothing to compare
    assert len(REGEXES) >= 2 and len(SCHEMAS) >= 10


FORMATS = {
    "date": r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])",
    "date-time": r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])T([01][0-9]):[0-5][0-9]:[0-5][0-9]Z",
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
}


def values(schema: Any, root: Any) -> st.SearchStrategy[Any]:
    """Values valid for the subset of JSON Schema the shipped schemas use."""
    if "$ref" in schema:
        return values(root["$defs"][schema["$ref"].split("/")[-1]], root)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([values(s, root) for s in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([values({**schema, "type": k}, root) for k in kind])
    if kind == "object":
        return _objects(schema, root)
    if kind == "array":
        items = values(schema.get("items", {"type": "integer"}), root)
        return st.lists(
            items, min_size=schema.get("minItems", 0), max_size=schema.get("maxItems", 4)
        )
    if kind == "string":
        if "pattern" in schema or "format" in schema:
            pattern = schema.get("pattern") or FORMATS[schema["format"]]
            return st.from_regex(pattern.strip("^$"), fullmatch=True)
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 20))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "number":
        return st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-1000, 1000)
    if kind == "boolean":
        return st.booleans()
    return st.none()


def _objects(schema: dict[str, Any], root: Any) -> st.SearchStrategy[dict[str, Any]]:
    props = schema.get("properties", {})
    required = set(schema.get("required", ()))
    need = {k: values(v, root) for k, v in props.items() if k in required}
    maybe = {k: values(v, root) for k, v in props.items() if k not in required}
    return st.fixed_dictionaries(need, optional=maybe).map(
        lambda d: {k: d[k] for k in props if k in d}  # in the schema's order, as both enforce
    )


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
    schema = json.loads(source.text)
    value = data.draw(values(schema, schema))
    compact = data.draw(st.booleans())
    text = json.dumps(value, separators=(",", ":") if compact else None, ensure_ascii=False)
    assert disagreements(source, close, mutated(text, data)) == []


@pytest.mark.parametrize("policy", ["flexible", "[ ]?"])
@pytest.mark.parametrize(("name", "source", "close"), SCHEMAS, ids=[c[0] for c in SCHEMAS])
@SETTINGS
@given(data=st.data())
def test_schema_instances_agree_under_each_whitespace_policy(
    name: str, source: GrammarSource, close: str | None, policy: str, data: st.DataObject
) -> None:
    schema = json.loads(source.text)
    value = data.draw(values(schema, schema))
    indent = data.draw(st.sampled_from([None, 1])) if policy == "flexible" else None
    text = json.dumps(value, indent=indent, ensure_ascii=False)  # ", " and ": " between tokens
    spaced = replace(source, json_whitespace=policy)
    assert disagreements(spaced, close, mutated(text, data)) == []
