"""Both constraint backends behind one interface: same language, masks, forced close, bounds."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from llmos_grammar.constraints import (
    MaskBuffer,
    Matcher,
    TokenTable,
    build_table,
    compile_constraint,
    fill_masks,
    outlines_build,
    plan,
)
from llmos_grammar.constraints.llguidance_backend import LLGuidanceConstraint
from llmos_grammar.constraints.outlines_build import Bounds
from llmos_grammar.errors import BackendError, Location
from llmos_grammar.ir import BackendChoice, GrammarSource
from tests.test_runtime_helpers import tokenizer

BACKENDS: tuple[BackendChoice, ...] = ("outlines", "llguidance")
PERSON = json.dumps(
    {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
)


@pytest.fixture(scope="module")
def table() -> TokenTable:
    tok = tokenizer()
    return build_table(tok, len(tok) + 64, tok.eos_token_id)  # logits wider than the vocab


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(outlines_build, "_LOADED", {})


def src(kind: str, text: str) -> GrammarSource:
    return GrammarSource(kind, text, Location("<t>", 1, 1))  # type: ignore[arg-type]


def flexible(schema: str) -> GrammarSource:
    """A JSON-schema source that allows any JSON whitespace between tokens."""
    return replace(src("json_schema", schema), json_whitespace="flexible")


def ids(text: str) -> list[int]:
    return list(tokenizer().encode(text, add_special_tokens=False))


def allowed(matcher: Matcher, table: TokenTable) -> list[int]:
    """The ids the matcher's mask allows next (through the decoding's mask path)."""
    mask = MaskBuffer(table.vocab_size).fill([matcher])[0]
    assert isinstance(mask, torch.Tensor), mask
    return [int(i) for i in mask.nonzero().flatten()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("source", "good", "bad"),
    [
        (src("regex", r"[0-9]{1,4}\n"), "2024\n", "12345\n"),
        (flexible(PERSON), '{"name": "Ada", "age": 36}', '{"name": "Ada"}'),
        (src("json_schema", PERSON), '{"name":"Ada","age":36}', '{"name": "Ada", "age": 36}'),
    ],
)
def test_body_then_close(
    table: TokenTable, backend: BackendChoice, source: GrammarSource, good: str, bad: str
) -> None:
    compiled, how = compile_constraint(source, table, "[/END]", "s", backend)
    assert compiled.backend == how.backend == backend
    ok = compiled.new()
    assert ok.consume(ids(good + "[/END]"))
    assert ok.is_accepting() and allowed(ok, table) == [table.eos]  # nothing but the end
    rejected = compiled.new()
    assert not rejected.consume(ids(bad + "[/END]"))
    assert rejected.error


def test_masks_agree_row_by_row(table: TokenTable) -> None:
    source = flexible(PERSON)
    pair = [compile_constraint(source, table, "[/J]", "s", b)[0].new() for b in BACKENDS]
    bits = torch.zeros((2, (table.vocab_size + 31) // 32), dtype=torch.int32)
    for step in ['{"name"', ': "A', 'da", "age": ', "3", "6}", "[/J]"]:
        fill_masks([(pair[0], 0), (pair[1], 1)], bits)
        assert torch.equal(bits[0], bits[1]), step
        assert bits[0].any()
        for matcher in pair:
            assert matcher.consume(ids(step))


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_is_forced(table: TokenTable, backend: BackendChoice) -> None:
    compiled, _ = compile_constraint(src("regex", r"(ab|cd)=[0-9]"), table, "[/X]", "s", backend)
    m = compiled.new()
    assert m.consume(ids("ab=7"))
    assert tokenizer().decode(m.forced()) == "[/X]"
    assert not m.is_accepting()
    assert m.consume(m.forced()) and m.is_accepting()


def test_llguidance_rollback_undoes(table: TokenTable) -> None:
    # the differential check walks Outlines' index with one llguidance matcher, rolling back
    compiled, _ = compile_constraint(
        src("regex", r"(ab|cd)=[0-9]"), table, "[/X]", "s", "llguidance"
    )
    m = compiled.new()
    assert isinstance(m, LLGuidanceConstraint)
    assert m.consume(ids("ab=7"))
    m.rollback(1)
    assert m.consume(ids("8"))
    assert m.consume(m.forced()) and m.is_accepting()


def test_explicit_outlines_for_lark_is_an_error(table: TokenTable) -> None:
    with pytest.raises(BackendError) as info:
        compile_constraint(src("lark", 'start: "x"\n'), table, None, "code", "outlines")
    assert "Lark" in info.value.message and "code" in info.value.message
    assert info.value.location is not None


def test_auto_picks_outlines_for_regex_and_llguidance_for_lark() -> None:
    assert plan(src("regex", "[a-z]+"), "[/X]").backend == "outlines"
    assert plan(src("lark", 'start: "x"\n'), None).backend == "llguidance"
    assert plan(src("regex", "[a-z]+"), None, "llguidance").backend == "llguidance"


def test_auto_falls_back_when_outlines_drops_a_keyword() -> None:
    schema = json.dumps({"type": "integer", "minimum": 0})
    how = plan(src("json_schema", schema), None)
    assert how.backend == "llguidance" and how.fell_back
    assert "minimum" in how.reason
    with pytest.raises(BackendError):
        plan(src("json_schema", schema), None, "outlines")


def test_auto_falls_back_past_the_time_bound(
    table: TokenTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmos_grammar.constraints import choose, registry

    monkeypatch.setattr(registry, "CHECK_BOUNDS", Bounds(seconds=0.3, states=20_000))
    choose._plan.cache_clear()
    heavy = src("regex", r" ?[^\n\[]{1,40}\n")  # minutes to build in outlines-core 0.2
    how = plan(heavy, None)
    assert how.backend == "llguidance" and "took over 0.3 s" in how.reason
    compiled, how = compile_constraint(heavy, table, None, "answer")
    assert compiled.backend == "llguidance" and how.fell_back
    choose._plan.cache_clear()


def test_state_bound(table: TokenTable, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmos_grammar.constraints import choose, registry

    monkeypatch.setattr(registry, "CHECK_BOUNDS", Bounds(seconds=5, states=10))
    choose._plan.cache_clear()
    how = plan(src("regex", "[a-z]{30}"), None)
    assert how.backend == "llguidance" and "states (bound 10)" in how.reason
    choose._plan.cache_clear()


def test_index_is_cached_on_disk(table: TokenTable, tmp_path: Path) -> None:
    source = src("regex", r"[0-9]{2,3}")
    compile_constraint(source, table, None, "s", "outlines")
    files = sorted((tmp_path / "cache" / "outlines").glob("*.idx"))
    assert files  # the byte-level (check) and the tokenizer-level index
    outlines_build._LOADED.clear()
    again, _ = compile_constraint(source, table, None, "s", "outlines")
    m = again.new()
    assert m.consume(ids("123")) and m.is_accepting()


def test_json_alignment_matches_outlines_core() -> None:
    import outlines_core

    from llmos_grammar.grammar.schema_regex import JSON_ALIGN

    theirs = outlines_core.json_schema.STRING_INNER + outlines_core.json_schema.NUMBER
    assert all(old in theirs for old, _ in JSON_ALIGN)  # an upgrade that changes them fails here


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ({"type": "number"}, "1E5"),
        ({"type": "string"}, '"a\\u001fb"'),
        ({"type": "string"}, '"\u0085"'),
    ],
)
def test_outlines_json_follows_llguidance(schema: dict[str, str], text: str) -> None:
    from llmos_grammar.constraints.differential import disagreements

    source = src("json_schema", json.dumps(schema))
    assert plan(source, "[/J]").backend == "outlines"
    assert disagreements(source, "[/J]", [text, text + "x", '"a\\/b"', '"\\u0041"']) == []
