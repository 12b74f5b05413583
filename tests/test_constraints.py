"""Constraints: grammar + close delimiter, masks, forced tokens, errors."""

from __future__ import annotations

import json

import pytest
import torch

from llmos_grammar.constraints import CompiledConstraint, MaskBuffer, apply_mask, build_table
from llmos_grammar.errors import GrammarError, Location
from llmos_grammar.ir import GrammarSource
from tests.test_runtime_helpers import tokenizer


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    tok = tokenizer()
    return build_table(tok, len(tok) + 64, tok.eos_token_id)  # logits wider than the vocab


def src(kind: str, text: str) -> GrammarSource:
    return GrammarSource(kind, text, Location("<t>", 1, 1))  # type: ignore[arg-type]


def ids(text: str) -> list[int]:
    return list(tokenizer().encode(text, add_special_tokens=False))


LARK = 'start: "print(" /[0-9]+/ ")\\n"\n'


@pytest.mark.parametrize(
    ("source", "good", "bad"),
    [
        (src("lark", LARK), "print(12)\n", "print(x)\n"),
        (src("regex", r"[0-9]{1,4}\n"), "2024\n", "12345\n"),
        (src("json_schema", json.dumps({"type": "integer"})), "42", '"x"'),
    ],
)
def test_body_then_close(table, source: GrammarSource, good: str, bad: str) -> None:  # type: ignore[no-untyped-def]
    compiled = CompiledConstraint(source, table, "[/END]", "s")
    ok = compiled.new()
    assert ok.consume(ids(good + "[/END]"))
    only_the_end = MaskBuffer(table.vocab_size).fill([ok])[0]
    assert ok.is_accepting() and only_the_end.nonzero().flatten().tolist() == [table.eos]
    rejected = compiled.new()
    assert not rejected.consume(ids(bad + "[/END]"))
    assert rejected.error


def test_close_is_forced_once_started(table) -> None:  # type: ignore[no-untyped-def]
    m = CompiledConstraint(src("lark", LARK), table, "[/CODE]", "code").new()
    assert tokenizer().decode(m.forced()) == "print("
    m.consume(m.forced())
    assert m.consume(ids("7)"))
    assert tokenizer().decode(m.forced()) == "\n[/CODE]"


def test_mask_allows_exactly_the_grammar(table) -> None:  # type: ignore[no-untyped-def]
    m = CompiledConstraint(src("regex", "(yes|no)"), table, None, "s").new()
    bits = MaskBuffer(table.vocab_size).fill([m])[0]
    assert isinstance(bits, torch.Tensor) and bits.dtype == torch.bool
    allowed = bits.nonzero().flatten()
    texts = {tokenizer().decode([int(i)]) for i in allowed if int(i) < len(tokenizer())}
    assert {"yes", "no", "y", "n"} <= texts
    assert all("yes".startswith(t) or "no".startswith(t) for t in texts)
    logits = torch.zeros(table.vocab_size + 8)  # logits wider than the mask
    masked = apply_mask(logits, bits)
    assert int(torch.isfinite(masked).sum()) == len(allowed)
    assert torch.isinf(masked[len(tokenizer()) :]).all()  # padding ids never allowed


def test_bad_grammar_is_a_grammar_error(table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GrammarError) as info:
        CompiledConstraint(src("lark", "start: undefined_rule\n"), table, "[/X]", "code")
    assert "code" in str(info.value)
    assert info.value.location is not None


def test_token_table_bytes(table) -> None:  # type: ignore[no-untyped-def]
    tok = tokenizer()
    text = "Hello, wörld [CODE]\n"
    assert table.decode(ids(text)) == text.encode()
    assert tok.eos_token_id in table.special
