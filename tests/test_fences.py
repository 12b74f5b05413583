"""Markdown fences as triggers and close (examples/chat on a tiny random model): which spelling
fired, and closing fences written in odd ways (at the end of a code line, followed by text,
an end of sequence inside the code)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from llmos_grammar.ir import GrammarState
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime import DoneEvent, Runtime, TransitionEvent
from llmos_grammar.spec.loader import load
from llmos_grammar.trace import read_trace
from tests.test_runtime_helpers import FakeRunner, tiny_model, token_id, tokenizer

SPEC = Path(__file__).resolve().parent.parent / "examples" / "chat" / "spec.yaml"
EOS = "<eos>"


class Ranked:
    """Greedy decoding that takes, at each step, the first of that step's pieces the mask
    allows (each piece one token, or EOS); EOS once the steps run out."""

    def __init__(self, steps: list[list[str] | str]) -> None:
        self.steps = [[s] if isinstance(s, str) else s for s in steps]
        self.calls: list[str] = []

    def __call__(self, state: str, text: str, logits: Any) -> None:
        step = len(self.calls)
        self.calls.append(state)
        wanted = self.steps[step] if step < len(self.steps) else [EOS]
        for rank, piece in enumerate(wanted):
            tid = tokenizer().eos_token_id if piece == EOS else token_id(piece)
            logits[tid] += 1e4 - rank * 1e3  # a masked token stays at -inf


def run(steps: list[list[str] | str], *results: ActionResult, **changes: Any) -> tuple:
    machine = load(SPEC)
    if changes:
        code = replace(machine.states["code"], **changes)
        machine = replace(machine, states={**machine.states, "code": code})
    runner = FakeRunner(*results)
    script = Ranked(steps)
    rt = Runtime(machine, tiny_model(), runner=runner, logits_processors=[script])
    events = list(rt.stream("What is 2 to the power of 31?"))
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done.result, events, runner, script


def fired(events: list) -> list[tuple[str, str, str]]:
    return [(e.source, e.target, e.trigger) for e in events if isinstance(e, TransitionEvent)]


def test_the_chat_spec_excludes_the_fence_from_code() -> None:
    code = load(SPEC).states["code"]
    assert isinstance(code, GrammarState) and code.constraint.excludes == "```"


def test_the_longer_spelling_fires_when_written_whole(tmp_path: Path) -> None:
    steps: list[list[str] | str] = ["Sure", ":", "```", "python", "print", "(", "1", ")", "\n"]
    result, events, runner, _ = run([*steps, "```", "Done", ".", "\n"], ActionResult(stdout="1\n"))
    assert fired(events)[0] == ("talk", "code", "```python")
    assert runner.calls == [("python", "print(1)\n")]
    assert result.text == "Sure:```python\nprint(1)\n```\n```output\n1\n```\nDone.\n"
    assert result.stop_reason == "final"
    shown = shown_by_cli(events, tmp_path)
    assert "triggers: '```python' -> code\n" in shown["text"]
    assert "⟨code ← '```python'⟩" in shown["colour"]
    moves = [e for e in shown["json"] if e["kind"] == "transition"]
    assert moves[0] == {
        "kind": "transition",
        "source": "talk",
        "target": "code",
        "trigger": "```python",
    }
    traced = [e for e in shown["trace"].events if isinstance(e, TransitionEvent)]
    assert traced[0].trigger == "```python"
    typed = [e for e in read_trace(tmp_path / "trace.jsonl").events if e.kind == "transition"]
    assert typed == [e for e in events if isinstance(e, TransitionEvent)]


def shown_by_cli(events: list, folder: Path) -> dict[str, Any]:
    """What llmos-run shows of `events`: text view (plain and coloured), JSON lines, trace."""
    import io
    import json

    from llmos_grammar.cli.run import JsonView, TextView
    from llmos_grammar.trace import TraceWriter

    outs = {"text": io.StringIO(), "colour": io.StringIO(), "json": io.StringIO()}
    views = [
        TextView(outs["text"], load(SPEC), colour=False),
        TextView(outs["colour"], load(SPEC), colour=True),
        JsonView(outs["json"]),
    ]
    with TraceWriter(folder / "trace.jsonl") as trace:
        for event in events:
            trace.write(event)
            for view in views:
                view.show(event)
    return {
        "text": outs["text"].getvalue(),
        "colour": outs["colour"].getvalue(),
        "json": [json.loads(line) for line in outs["json"].getvalue().splitlines()],
        "trace": read_trace(folder / "trace.jsonl"),
    }


def test_the_shorter_spelling_fires_and_the_rest_is_dropped() -> None:
    # "```" + "py" completes "```py"; the model's "thon" never reaches the code state
    steps: list[list[str] | str] = ["```", "py", "print", "(", "2", ")", "\n", "```", "ok", "\n"]
    result, events, runner, _ = run(steps, ActionResult(stdout="2\n"))
    assert fired(events)[0] == ("talk", "code", "```py")
    assert runner.calls == [("python", "print(2)\n")]
    assert result.text.startswith("```py\nprint(2)\n```\n```output\n2\n```\n")


def test_a_fence_at_the_end_of_a_code_line_waits_for_the_newline() -> None:
    # the model wants "```" right after ")": the grammar takes only whole lines, so "\n" comes
    # first and the fence after it still closes the code
    steps: list[list[str] | str] = ["```", "python", "print", "(", "3", ")", ["```", "\n"]]
    result, events, runner, _ = run([*steps, "```", "ok", "\n"], ActionResult(stdout="3\n"))
    assert runner.calls == [("python", "print(3)\n")]
    assert ("code", "run", "```") in fired(events)
    assert result.text.endswith("print(3)\n```\n```output\n3\n```\nok\n")


def test_text_after_the_fence_on_the_same_line_comes_after_the_output() -> None:
    # " The" right after the fence: the code state ends at the fence, the output is injected,
    # and the model's text goes on after it
    steps: list[list[str] | str] = ["```", "python", "print", "(", "4", ")", "\n", "```"]
    result, _, runner, script = run([*steps, " The", " answer", "\n"], ActionResult(stdout="4\n"))
    assert runner.calls == [("python", "print(4)\n")]
    assert result.text.endswith("print(4)\n```\n```output\n4\n```\n The answer\n")
    assert script.calls[-4:] == ["answer"] * 4  # " The", " answer", "\n", EOS


def test_eos_inside_the_code_is_refused_and_the_fence_written() -> None:
    # EOS is masked until the close: the model's next choice goes on
    steps: list[list[str] | str] = ["```", "python", "print", "(", "5", ")", "\n"]
    result, _, runner, _ = run([*steps, [EOS, "```"], "ok", "\n"], ActionResult(stdout="5\n"))
    assert runner.calls == [("python", "print(5)\n")]
    assert result.stop_reason == "final" and result.text.endswith("```output\n5\n```\nok\n")


def test_code_that_never_closes_ends_the_run_clearly() -> None:
    steps: list[list[str] | str] = ["```", "python", "print", "(", "1", ")", "\n"]
    steps += [[EOS, "\n"]] * 10
    result, _, runner, _ = run(steps, max_tokens=6)
    assert runner.calls == []
    assert result.stop_reason == "state_max_tokens"
    assert result.message == "state 'code' used its 6 tokens without finishing"
