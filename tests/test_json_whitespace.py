"""One JSON whitespace policy for both backends: compact (the default), flexible, or a regex;
the spec key, its errors, and the array schemas Outlines now enforces."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from llmos_grammar.constraints import byte_compiled, plan
from llmos_grammar.constraints.differential import accepts, divergence
from llmos_grammar.errors import Location
from llmos_grammar.grammar.translate import lark_text
from llmos_grammar.ir import GrammarSource, GrammarState
from llmos_grammar.spec.check import check_paths
from tests.specs import SPEC, write

ROOT = Path(__file__).resolve().parent.parent
INTS = json.dumps({"type": "array", "items": {"type": "integer"}})
# the benchmark schemas `auto` gave to llguidance while Outlines allowed no whitespace
# before `,` in an array (see the README's table of what `auto` picks)
ARRAY_SCHEMAS = (
    "09_tags_array",
    "10_int_list",
    "15_line_items",
    "18_ref_tree",
    "22_deep_nested",
    "24_product_catalog",
)


def ints(policy: str) -> GrammarSource:
    return GrammarSource("json_schema", INTS, Location("<t>"), json_whitespace=policy)


def verdicts(source: GrammarSource, text: str) -> tuple[bool, bool]:
    """(llguidance, Outlines) on the whole of `text` followed by a close."""
    data = (text + "[/J]").encode()
    return tuple(  # type: ignore[return-value]
        accepts(byte_compiled(source, "[/J]", backend), data)
        for backend in ("llguidance", "outlines")
    )


@pytest.mark.parametrize(
    ("policy", "text", "expected"),
    [
        ("compact", "[1,2]", True),
        ("compact", "[1 , 2]", False),
        ("compact", "[1, 2]", False),
        ("compact", " [1,2]", False),
        ("flexible", "[1,2]", True),
        ("flexible", "[1 , 2]", True),
        ("flexible", "[ 1,\n\t2\r\n]", True),
        ("flexible", "[1,2] ", False),  # never after the value
        ("[ ]?", "[1 , 2]", True),  # a regex: once wherever JSON allows whitespace
        ("[ ]?", "[ ]", True),
        ("[ ]?", "[  ]", False),
        ("[ ]?", "[1  ,2]", False),
        ("[ ]?", "[1,\n2]", False),
        ("[ \\n]{0,2}", "[1,\n 2]", True),
    ],
)
def test_both_backends_enforce_the_policy(policy: str, text: str, expected: bool) -> None:
    assert verdicts(ints(policy), text) == (expected, expected)


@pytest.mark.parametrize("policy", ["compact", "flexible", "[ ]?", " ", "[ \\n]{0,2}"])
def test_outlines_and_llguidance_allow_the_same_bytes_everywhere(policy: str) -> None:
    nested = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "grid": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
            "note": {"type": "string", "maxLength": 3},
        },
        "required": ["tags"],
        "additionalProperties": False,
    }
    source = replace(ints(policy), text=json.dumps(nested))
    assert divergence(source, "[/J]") is None
    assert plan(source, "[/J]").backend == "outlines"


def test_compact_is_the_default_and_costs_fewer_bytes() -> None:
    source = GrammarSource("json_schema", INTS, Location("<t>"))
    assert source.json_whitespace == "compact"
    assert verdicts(source, "[1,2,3]") == (True, True)
    assert verdicts(source, "[1, 2, 3]") == (False, False)


def test_the_policy_reaches_llguidance_as_x_guidance_options() -> None:
    schema = {"type": "array", "x-guidance": {"whitespace_flexible": True, "lenient": True}}
    source = GrammarSource("json_schema", json.dumps(schema), Location("<t>"))
    text = lark_text(source, "[/J]")
    inline = json.loads(text[text.index("%json ") + len("%json ") :])
    assert inline["x-guidance"] == {
        "lenient": True,  # options other than whitespace stay
        "whitespace_flexible": False,
        "item_separator": ",",
        "key_separator": ":",
    }


@pytest.mark.parametrize("name", ARRAY_SCHEMAS)
def test_the_array_schemas_now_pass_the_differential_check_on_outlines(name: str) -> None:
    schema = json.loads((ROOT / "benchmarks" / "schemas" / f"{name}.json").read_text())
    instance = schema.pop("examples")[0]
    source = GrammarSource("json_schema", json.dumps(schema), Location(name))
    how = plan(source, "[/JSON]")
    assert (how.backend, how.reason) == ("outlines", "")
    compact = json.dumps(instance, separators=(",", ":"))
    assert verdicts(source, compact) == (True, True)
    flexible = replace(source, json_whitespace="flexible")
    assert plan(flexible, "[/JSON]").backend == "outlines"  # whitespace before `,` too
    assert verdicts(flexible, json.dumps(instance, indent=1)) == (True, True)


# ---- the spec key -----------------------------------------------------------------------

ARRAY_STATE = """\
  code:
    type: grammar
    json_schema: {type: array, items: {type: integer}}
    close: "[/CODE]"
    next: run
"""


def with_code(state: str, head: str = "", tests: str = "") -> str:
    start, end = SPEC.index("  code:\n"), SPEC.index("  run:\n")
    spec = SPEC[:start] + state + SPEC[end:] + tests
    return spec.replace("start: talk\n", f"start: talk\n{head}")


def test_spec_key_and_state_override_reach_the_ir(tmp_path: Path) -> None:
    state = ARRAY_STATE.replace("    close:", "    json_whitespace: '[ ]?'\n    close:")
    tests = "tests:\n  code:\n    accept: ['[1 , 2]']\n    reject: ['[1  ,2]']\n"
    report, checked = check_paths([str(write(tmp_path, with_code(state, tests=tests)))])
    assert report.diagnostics == []
    code = checked[0].machine.states["code"]  # type: ignore[union-attr]
    assert isinstance(code, GrammarState) and code.constraint.json_whitespace == "[ ]?"
    head = "json_whitespace: flexible\n"
    _, checked = check_paths([str(write(tmp_path, with_code(ARRAY_STATE, head)))])
    code = checked[0].machine.states["code"]  # type: ignore[union-attr]
    assert isinstance(code, GrammarState) and code.constraint.json_whitespace == "flexible"


def test_explicit_outlines_with_an_array_checks_clean(tmp_path: Path) -> None:
    state = ARRAY_STATE.replace("    close:", "    backend: outlines\n    close:")
    tests = "tests:\n  code:\n    accept: ['[1,2]', '[]']\n    reject: ['[1 ,2]', '[1, 2]']\n"
    report, checked = check_paths([str(write(tmp_path, with_code(state, tests=tests)))])
    assert report.diagnostics == []
    assert checked[0].backends["code"].backend == "outlines"


@pytest.mark.parametrize(
    ("value", "message", "hint"),
    [
        ("compakt", "it matches 'compakt'", "did you mean 'compact'?"),
        ("flexibel", "it matches 'flexibel'", "did you mean 'flexible'?"),
        ("\\s*", "it matches '\\x0b'", "a regex of JSON whitespace"),
        ("[ ", "not a valid regex: unclosed character class", "a regex of JSON whitespace"),
    ],
)
def test_a_bad_value_is_a_located_error_with_a_hint(
    tmp_path: Path, value: str, message: str, hint: str
) -> None:
    state = ARRAY_STATE.replace("    close:", f"    json_whitespace: '{value}'\n    close:")
    spec = with_code(state)
    report, _ = check_paths([str(write(tmp_path, spec))])
    [error] = report.errors
    assert error.code == "json-whitespace" and error.path == "states.code.json_whitespace"
    assert message in error.message and hint in error.hint
    line = spec.splitlines().index(f"    json_whitespace: '{value}'") + 1
    assert (error.location.line, error.location.column) == (line, 22)


def test_a_bad_spec_level_value_is_reported_once(tmp_path: Path) -> None:
    spec = with_code(ARRAY_STATE, "json_whitespace: compat\n")
    report, _ = check_paths([str(write(tmp_path, spec))])
    [error] = report.errors
    assert error.path == "json_whitespace" and error.hint == "did you mean 'compact'?"
    assert error.location.line == spec.splitlines().index("json_whitespace: compat") + 1
