"""Session on a tiny random model: KV reuse is exact, undo/reset/save/load, long sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmos_grammar.cli.shell_input import MAX_INPUT_BYTES, clean
from llmos_grammar.engines.transformers import TransformersEngine
from llmos_grammar.errors import SessionError
from llmos_grammar.ir import Budgets, FinalState, Sampling, SessionLimits, TextState
from llmos_grammar.runtime.session import Session
from tests.test_runtime_helpers import FakeRunner, machine, tiny_model

TURNS = ["What is two and two?", "And times three?", "Now subtract five."]


def _machine(max_context: int | None = None) -> object:
    states = {"talk": TextState("talk", on_eos="end", max_tokens=8), "end": FinalState("end")}
    return machine(
        states,
        "talk",
        budgets=Budgets(max_tokens=8),
        sampling=Sampling(temperature=1.0, seed=3),
        session=SessionLimits(max_context=max_context),
    )


def _prefill(ids: list[int]) -> torch.Tensor:
    engine = TransformersEngine(tiny_model())
    row = engine.open_row()
    engine.append(row, ids)
    return engine.forward([row])[row]


def test_logits_after_turn_three_equal_one_prefill_of_the_conversation() -> None:
    with Session(_machine(), tiny_model(), runner=FakeRunner()) as session:
        for text in TURNS:
            assert session.send(text).stop_reason in ("max_tokens", "final")
        ids = list(session.seq.ids)
        fed_before = session.seq.forward_tokens
        kept = session.seq.flush()
        assert session.seq.forward_tokens - fed_before <= 1  # only the last sampled token
    text = tiny_model().tokenizer.decode(ids)
    assert all(t in text for t in TURNS) and text.count("<|im_start|>user") == 3
    assert torch.allclose(kept, _prefill(ids), atol=1e-5)


def test_each_turn_feeds_only_its_own_tokens() -> None:
    with Session(_machine(), tiny_model(), runner=FakeRunner()) as session:
        first = session.send(TURNS[0])
        second = session.send(TURNS[1])
    assert first.stats.prompt_tokens > 20  # the system prompt and the first question
    assert second.stats.prompt_tokens < 20  # end of turn, the question, assistant header
    assert len(second.prompt_ids) > first.stats.prompt_tokens


def test_undo_crops_the_cache_and_reset_empties_it(tmp_path: Path) -> None:
    with Session(_machine(), tiny_model(), runner=FakeRunner()) as session:
        session.send(TURNS[0])
        after_one = list(session.seq.ids)
        session.send(TURNS[1])
        assert session.undo() is not None
        assert session.seq.ids == after_one and len(session.turns) == 1
        session.save(tmp_path / "s.jsonl")
        session.reset()
        assert session.context_tokens == 0 and session.undo() is None
        assert session.load(tmp_path / "s.jsonl") == 1
        assert session.turns[0].user == TURNS[0]
        assert session.send(TURNS[2]).ok or session.turns[-1].user == TURNS[2]
        assert len(session.turns) == 2


def test_interrupted_turn_is_rolled_back() -> None:
    with Session(_machine(), tiny_model(), runner=FakeRunner()) as session:
        session.send(TURNS[0])
        before = list(session.seq.ids)
        stream = session.stream(TURNS[1])
        next(stream)
        stream.close()  # what Ctrl-C does to the generator
        assert session.seq.ids == before and len(session.turns) == 1


def test_long_session_drops_oldest_turns_with_one_prefill() -> None:
    lines: list[str] = []
    with Session(_machine(160), tiny_model(), runner=FakeRunner(), notify=lines.append) as s:
        for i in range(8):
            s.send(f"question number {i}")
            assert s.context_tokens <= 160
        assert s.compactions and lines and "dropped the oldest" in lines[0]
        assert s.turns[-1].user == "question number 7"
        assert all(c.seconds >= 0 and c.kept >= 0 for c in s.compactions)


def test_a_turn_too_long_for_the_context_is_refused() -> None:
    with Session(_machine(160), tiny_model(), runner=FakeRunner()) as session:
        with pytest.raises(SessionError, match="shorten it"):
            session.send("word " * 400)
        assert session.turns == [] and session.context_tokens == 0


def test_terminal_input_paste_and_bad_bytes() -> None:
    assert clean("x" * (100 * 1024)).refused
    assert "refused" in clean("x" * (100 * 1024)).problem
    assert not clean("x" * (MAX_INPUT_BYTES - 1)).refused
    raw = b"caf\xe9 ok".decode("utf-8", "surrogateescape")
    line = clean(raw)
    assert line.text == "caf\ufffd ok" and "not UTF-8" in line.problem and not line.refused
    assert clean("plain").problem == ""
