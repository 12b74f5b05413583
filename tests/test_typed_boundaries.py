"""Where untyped data enters typed code: traces, tokenizers, schema-checked YAML, step logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos_grammar.errors import LlmosError, ModelError
from llmos_grammar.ir import Budgets
from llmos_grammar.libtypes.hf import as_tokenizer
from llmos_grammar.spec.yamldata import choice, from_data, items, mapping, maybe_int, text
from llmos_grammar.trace import read_trace, transcript


def test_a_trace_line_that_is_not_an_object_is_located(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"kind": "header"}\n\n{"kind": "token", "text": "a"}\n[1, 2]\n')
    with pytest.raises(LlmosError, match="not a JSON object") as info:
        read_trace(path)
    assert info.value.location is not None and info.value.location.line == 4
    path.write_text('{"kind": "header"}\n{"kind": "token", "text": "a"}\n{"kind": "inj\n')
    with pytest.raises(LlmosError) as info:
        read_trace(path)
    assert info.value.location is not None and info.value.location.line == 3


def test_transcript_reads_records_of_any_shape() -> None:
    tokens = [{"kind": "token", "text": "a"}, {"kind": "injected", "text": 7}]
    assert transcript(tokens) == "a7"
    assert transcript([*tokens, {"kind": "done", "result": {"text": "all"}}]) == "all"
    assert transcript([{"kind": "done", "result": "broken"}]) == ""


def test_as_tokenizer_refuses_what_is_not_one() -> None:
    with pytest.raises(ModelError, match="here: str is not a text tokenizer"):
        as_tokenizer("gpt2", "here")


def test_yaml_reads_narrow_and_fall_back() -> None:
    assert mapping({"a": 1}) == {"a": 1} and mapping([1]) == {} and items("x") == []
    assert text(3, "d") == "d" and maybe_int(True) is None and maybe_int(4) == 4
    assert choice("outlines", ("auto", "outlines"), "auto") == "outlines"
    assert choice("outline", ("auto", "outlines"), "auto") == "auto"
    assert from_data(Budgets, {"max_tokens": 5}) == Budgets(max_tokens=5)
