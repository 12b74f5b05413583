"""`--explain --tokens`: the walk token by token with the default model's tokenizer, the
token table and masks the runtime uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmos_grammar.cli.main import main
from llmos_grammar.constraints.explain import explain
from llmos_grammar.constraints.explain.tokenwalk import token_walk
from llmos_grammar.ir import GrammarState, ModelRef, TextState
from tests.test_explain_helpers import machine, spec_path
from tests.test_runtime_helpers import tokenizer

MODEL = ModelRef()


def state(name: str) -> TextState | GrammarState:
    found = machine().states[name]
    assert isinstance(found, TextState | GrammarState)
    return found


def test_a_text_split_mid_token() -> None:
    text = "ab [x\n"  # " [" is one token: its space is allowed, its "[" is not
    assert tokenizer().tokenize(" [x")[0] == "Ġ["
    byte = explain(machine(), "word", text)
    assert byte.refused == 3
    walk = token_walk(state("word"), text, MODEL)
    assert walk.refused is not None
    refused = walk.steps[walk.refused]
    assert (refused.text, refused.start, refused.allowed) == (b" [", 2, False)
    assert refused.start < byte.refused < refused.start + len(refused.text)
    assert all(step.allowed for step in walk.steps[: walk.refused])
    assert 0 < refused.mask_size < walk.vocab_size


def test_forced_tokens_are_fed_as_the_decoder_feeds_them() -> None:
    walk = token_walk(state("code"), "print(1 + 2)\n[/CODE]", MODEL)
    assert walk.refused is None and walk.ended == "close" and walk.error == ""
    assert walk.steps[0].forced and walk.steps[0].text == b"print"  # forced at entry
    assert b"".join(s.text for s in walk.steps) == b"print(1 + 2)\n[/CODE]"
    chosen = [s for s in walk.steps if not s.forced]
    assert chosen and all(s.allowed and s.mask_size > 0 for s in chosen)


def test_a_trigger_fires_at_its_token() -> None:
    walk = token_walk(state("talk"), "see [CODE] then more", MODEL)
    assert walk.backend == "" and walk.ended == "[CODE]"
    # "[CODE" begins one trigger only: the runtime fires there and forces the "]"
    assert b"".join(s.text for s in walk.steps) == b"see [CODE"
    assert walk.rest == "]"


def test_tokens_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(spec_path(tmp_path))
    assert main(["check", "--explain", spec, "word", "ab [x\n", "--tokens"]) == 1
    out = capsys.readouterr().out
    assert "tokens (smollm2-135m-instruct tokenizer" in out
    assert "(the text is split mid-token)" in out
    refused = next(line for line in out.splitlines() if "REFUSED" in line)
    assert refused.startswith("  #1 id ") and "' [' at byte 2" in refused
    args = ["check", "--explain", spec, "word", "ab [x\n", "--tokens", "--format", "json"]
    assert main(args) == 1
    tokens = json.loads(capsys.readouterr().out)["tokens"]
    assert tokens["refused"] == 1 and tokens["model"] == "smollm2-135m-instruct"
    assert [s["text"] for s in tokens["steps"]] == ["ab", " ["]
    assert [s["allowed"] for s in tokens["steps"]] == [True, False]
