"""The llama.cpp engine on the real default model: KV reuse, rows, forced text, triggers."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from llmos_grammar.engines.select import llamacpp_available
from llmos_grammar.ir import ModelRef
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime import DoneEvent, Runtime, TransitionEvent
from tests.test_runtime import calc_machine
from tests.test_runtime_helpers import FakeRunner, Script

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not llamacpp_available(), reason="llama-cpp-python is not installed"),
]


@functools.cache
def lm() -> Any:
    from llmos_grammar.engines.llamacpp import load_llamacpp

    return load_llamacpp(ModelRef())


def engine() -> Any:
    from llmos_grammar.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(lm().model, n_ctx=2048, rows=4)


def ids(text: str) -> list[int]:
    return list(lm().tokenizer.encode(text, add_special_tokens=False))


def prompt() -> list[int]:
    return ids("Write Python code that prints the sum of the first 100 natural numbers.")


def injected() -> list[int]:
    return ids("\n[OUTPUT]\n5050\n[/OUTPUT]\nThe answer is")


def test_appending_after_an_action_equals_a_re_prefill() -> None:
    import torch

    e = engine()
    resumed = e.open_row()
    e.append(resumed, prompt())
    e.forward([resumed])
    e.append(resumed, injected())
    before = e.counters.forward_passes
    appended = e.forward([resumed])[resumed]
    assert e.counters.forward_passes == before + 1  # the whole output in one decode call
    # the re-prefill runs alone, as a re-prefill would: llama.cpp's kernels are not
    # batch-invariant, so a second row in the same context moves the logits (see engines.llamacpp)
    alone = engine()
    fresh = alone.open_row()
    alone.append(fresh, prompt() + injected())
    again = alone.forward([fresh])[fresh]
    assert torch.allclose(appended, again, atol=1e-3, rtol=1e-3)
    assert int(appended.argmax()) == int(again.argmax())


def test_rows_of_different_lengths_decode_together_as_they_would_alone() -> None:
    import torch

    prompts = [ids("What is 2 to the power of 31?"), ids("Hi"), prompt()]
    e = engine()
    alone = []
    for tokens in prompts:
        row = e.open_row()
        e.append(row, tokens)
        alone.append(e.forward([row])[row])
        e.close_row(row)
    together = engine()
    rows = [together.open_row() for _ in prompts]
    for row, tokens in zip(rows, prompts, strict=True):
        together.append(row, tokens)
    out = together.forward(rows)
    assert together.counters.forward_passes == 1
    # llama.cpp picks its matmul kernels by the batch's token count, so a row fed beside
    # others can move by ~0.5 (measured 0.49 on the longest prompt here, 0 on the others);
    # the engine documents it. Each row still reads as itself: same greedy token, close logits.
    for row, logits in zip(rows, alone, strict=True):
        assert torch.allclose(out[row], logits, atol=1.0)
        assert int(out[row].argmax()) == int(logits.argmax())


def test_truncate_removes_cells_and_the_row_refeeds() -> None:
    import torch

    e = engine()
    row = e.open_row()
    e.append(row, prompt())
    first = e.forward([row])[row].clone()
    e.append(row, ids(" nonsense to be undone"))
    e.forward([row])
    e.truncate(row, len(prompt()))
    assert e.cached(row) == len(prompt()) and e.ids(row) == prompt()
    back = e.forward([row])[row]  # the last prompt token is fed again
    assert torch.allclose(first, back, atol=1e-3, rtol=1e-3)


def test_closed_rows_free_their_sequence_for_new_rows() -> None:
    e = engine()
    for _ in range(10):  # more rows over time than the context holds at once
        row = e.open_row()
        e.append(row, prompt())
        e.forward([row])
        e.close_row(row)


def test_split_trigger_grammar_action_and_resume_on_llamacpp() -> None:
    runner = FakeRunner(ActionResult(stdout="42\n"))
    script = Script(["Sure", " [", "CO", "4", "2", ")", " Done", "."])
    rt = Runtime(calc_machine(), lm(), runner=runner, logits_processors=[script])  # type: ignore[arg-type]
    assert rt.engine_name == "llamacpp"
    events = list(rt.stream("task"))
    result = events[-1].result if isinstance(events[-1], DoneEvent) else None
    assert result is not None and result.stop_reason == "final", result
    assert runner.calls == [("python", "print(42)\n")]
    assert result.text == "Sure [CODE]\nprint(42)\n[/CODE]\n[OUTPUT]\n42\n[/OUTPUT]\n Done."
    moves = [(e.source, e.target) for e in events if isinstance(e, TransitionEvent)]
    assert moves == [("talk", "code"), ("code", "run"), ("run", "talk"), ("talk", "end")]
    # forced completions and injected output ride along: one decode per sampled token
    assert result.stats.forward_passes == result.stats.generated_tokens


def test_a_session_continues_one_row_and_agrees_with_a_re_prefill() -> None:
    """llama.cpp's kernels are not batch-invariant: after three turns of one-token steps the
    logits differ from one prefill's by tenths (Q4 matmuls by batch size); the choice does not."""
    from llmos_grammar.ir import Budgets, FinalState, TextState
    from llmos_grammar.runtime.session import Session
    from tests.test_runtime_helpers import machine

    states = {"talk": TextState("talk", on_eos="end", max_tokens=6), "end": FinalState("end")}
    m = machine(states, "talk", budgets=Budgets(max_tokens=6))
    with Session(m, lm(), runner=FakeRunner()) as session:
        assert session.rt.engine_name == "llamacpp"
        for question in ("What is 2 + 2?", "And times 3?", "Minus 5?"):
            session.send(question)
        context = list(session.seq.ids)
        kept = session.seq.flush()
        fresh = session.engine.open_row()
        session.engine.append(fresh, context)
        again = session.engine.forward([fresh])[fresh]
        session.engine.close_row(fresh)
        assert session.undo() is not None and len(session.seq.ids) < len(context)
    assert int(kept.argmax()) == int(again.argmax())
    top = set(kept.topk(5).indices.tolist())
    assert top == set(again.topk(5).indices.tolist())
    assert float((kept - again).abs().mean()) < 0.25  # measured: 0.12


def test_a_joining_row_shares_the_cells_of_the_first_prompt() -> None:
    import torch

    system = ids("You are a careful assistant. Answer with one Python expression. " * 2)
    first, second = system + ids(" What is 2 + 2?"), system + ids(" What is 7 times 6?")
    e = engine()
    a = e.open_row()
    e.append(a, first)
    e.forward([a])
    fed = e.counters.tokens_fed
    b = e.open_row()
    e.append(b, second)
    shared = e.forward([b])[b]
    # only the ids after the common prefix were computed; the others' cells came from row a
    common = next(i for i, (x, y) in enumerate(zip(first, second, strict=False)) if x != y)
    assert common >= len(system)
    assert e.counters.tokens_fed - fed == len(second) - common
    assert e.cached(b) == len(second) and e.row_counters(b).tokens_fed == len(second)
    alone = engine()
    c = alone.open_row()
    alone.append(c, second)
    again = alone.forward([c])[c]
    assert int(shared.argmax()) == int(again.argmax())
    assert torch.allclose(shared, again, atol=1.0)


def test_rows_that_start_together_compute_their_common_prompt_once() -> None:
    system = ids("You are a careful assistant. Answer with one Python expression. " * 2)
    prompts = [system + ids(q) for q in (" What is 2 + 2?", " What is 7 times 6?", " Is 9 odd?")]
    e = engine()
    rows = [e.open_row() for _ in prompts]
    for row, prompt in zip(rows, prompts, strict=True):
        e.append(row, prompt)
    out = e.forward(rows)
    # the first prompt whole, then only what each other prompt adds after the common prefix
    common = [shared_with(prompts[0], p) for p in prompts[1:]]
    assert min(common) >= len(system)
    expected = len(prompts[0]) + sum(len(p) - c for p, c in zip(prompts[1:], common, strict=True))
    assert e.counters.tokens_fed == expected
    for row, prompt in zip(rows, prompts, strict=True):
        alone = engine()
        single = alone.open_row()
        alone.append(single, prompt)
        assert int(out[row].argmax()) == int(alone.forward([single])[single].argmax())


def shared_with(first: list[int], other: list[int]) -> int:
    return next(i for i, (x, y) in enumerate(zip(first, other, strict=False)) if x != y)


def pinned_store(tmp_path: Any) -> Any:
    from llmos_grammar.engines.llamacpp import prefix_store

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("llmos_grammar.engines.prefix_store.cache_root", lambda: tmp_path)
        patch.delenv("LLMOS_KV_CACHE", raising=False)
        return prefix_store(lm().model)


def test_a_pinned_prefix_read_from_disk_gives_the_logits_of_a_whole_prefill(
    tmp_path: Any,
) -> None:
    system = ids("You are a careful assistant. Answer with one Python expression. " * 2)
    whole = system + ids(" What is 2 + 2?")
    alone = engine()
    row = alone.open_row()
    alone.append(row, whole)
    reference = alone.forward([row])[row]
    store = pinned_store(tmp_path)
    outs = []
    for _ in range(2):  # the first engine computes and saves the prefix, the second reads it
        e = engine()
        e.pin_prefix(system, store)
        r = e.open_row()
        e.append(r, whole)
        outs.append((e.forward([r])[r], e.counters.tokens_fed, e.row_counters(r).tokens_fed))
    (computed, fed_first, row_first), (read, fed_second, row_second) = outs
    assert store.load(system) is not None
    assert fed_first == len(whole) and fed_second == len(whole) - len(system)
    assert row_first == row_second == len(whole)  # in the row's context either way
    assert bool((computed == reference).all()) and bool((read == reference).all())


def test_a_damaged_prefix_state_is_computed_again(tmp_path: Any) -> None:
    system = ids("You are a careful assistant. Answer with one Python expression. " * 2)
    whole = system + ids(" Is 9 odd?")
    store = pinned_store(tmp_path)
    store.save(system, b"\x00" * 64)  # what llama.cpp cannot read
    e = engine()
    e.pin_prefix(system, store)
    r = e.open_row()
    e.append(r, whole)
    out = e.forward([r])[r]
    assert e.counters.tokens_fed == len(whole)
    alone = engine()
    a = alone.open_row()
    alone.append(a, whole)
    assert bool((out == alone.forward([a])[a]).all())
    assert store.load(system) not in (None, b"\x00" * 64)  # replaced by a good state


def test_rows_of_a_spec_share_its_prompt_before_the_task() -> None:
    from llmos_grammar.runtime.prompt import encode, prompt_pieces, task_free_ids
    from llmos_grammar.spec import load

    machine = load(Path(__file__).parents[1] / "examples" / "calculator" / "spec.yaml")
    tok = lm().tokenizer
    pinned = task_free_ids(machine.prompt, tok)
    assert len(pinned) > 20
    for task in ("What is 2 + 2?", "7", " leading space", "\nnewline first"):
        full = encode(tok, prompt_pieces(machine.prompt, tok, task))
        assert full[: len(pinned)] == pinned and len(full) > len(pinned)


def test_a_second_process_reads_the_spec_prompt_from_disk_and_decodes_the_same(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmos_grammar.runtime.prompt import task_free_ids
    from llmos_grammar.spec import load

    monkeypatch.setattr("llmos_grammar.engines.prefix_store.cache_root", lambda: tmp_path)
    monkeypatch.delenv("LLMOS_KV_CACHE", raising=False)
    machine = load(Path(__file__).parents[1] / "examples" / "calculator" / "spec.yaml")
    pinned = task_free_ids(machine.prompt, lm().tokenizer)
    runs = []
    for _ in range(2):  # each Runtime makes its own llama.cpp context, as a new process would
        runner = FakeRunner(ActionResult(stdout="4\n"))
        rt = Runtime(machine, lm(), runner=runner)
        result = rt.run("What is 2 + 2?")
        runs.append((result.text, rt.engine().counters.tokens_fed))
    (first_text, first_fed), (second_text, second_fed) = runs
    assert second_text == first_text and "4" in first_text
    assert first_fed - second_fed == len(pinned)
