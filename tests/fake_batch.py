"""A scripted stand-in for the batched runtime (`stream_batch`) and hand-made Results."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from llmos_grammar.actions import ActionResult
from llmos_grammar.ir import Sampling
from llmos_grammar.runtime import RowEvent
from llmos_grammar.runtime.events import (
    ActionRecord,
    DoneEvent,
    Result,
    Span,
    Stats,
    StopReason,
    TokenEvent,
)


def calc_result(
    code: str,
    answer: str,
    *,
    action: ActionResult | None = None,
    stop: StopReason = "final",
    stdout: str = "",
    tokens: int = 10,
) -> Result:
    """A calculator-like run: code, one action, its injected output, then the answer."""
    action = action or ActionResult(stdout=stdout)
    injected = f"\n[OUTPUT]\n{action.stdout}[/OUTPUT]\nThe answer is"
    transcript = (
        Span("code", "prompt", "<prompt>"),
        Span("code", "forced", "[CODE]\n"),
        Span("code", "model", code + "[/CODE]"),
        Span("run", "injected", injected),
        Span("answer", "model", answer),
    )
    record = ActionRecord("run", "python", code, action, injected)
    return Result(
        text="".join(s.text for s in transcript[1:]),
        final_state="end" if stop == "final" else "answer",
        stop_reason=stop,
        message=f"stopped: {stop}",
        transcript=transcript,
        actions=(record,),
        stats=Stats(generated_tokens=tokens, decode_s=1.0),
    )


def text_result(text: str, stop: StopReason = "eos", tokens: int = 5) -> Result:
    """A run with no action: the model's reply only."""
    return Result(
        text=text,
        final_state="answer",
        stop_reason=stop,
        message=f"stopped: {stop}",
        transcript=(Span("answer", "prompt", "<prompt>"), Span("answer", "model", text)),
        actions=(),
        stats=Stats(generated_tokens=tokens, decode_s=1.0),
    )


Script = Callable[[str, int], Result]


class FakeBatchRuntime:
    """`stream_batch` over a script: script(task, sample) -> Result (or raises).

    Rows interleave like a batch: a token event for every row first, then the
    DoneEvents in reverse row order. `interrupt_after` raises KeyboardInterrupt
    after that many DoneEvents. Every call is recorded in `calls`.
    """

    def __init__(self, script: Script, interrupt_after: int | None = None) -> None:
        self.script = script
        self.interrupt_after = interrupt_after
        self.calls: list[tuple[tuple[str, ...], int, int, Sampling | None]] = []
        self.done = 0
        self.closed = False

    def stream_batch(
        self,
        tasks: Sequence[str],
        samples: int = 1,
        batch: int = 8,
        sampling: Sampling | None = None,
    ) -> Iterator[RowEvent]:
        self.calls.append((tuple(tasks), samples, batch, sampling))
        jobs = [(t, s) for t in range(len(tasks)) for s in range(samples)]
        for start in range(0, len(jobs), batch):
            chunk = jobs[start : start + batch]
            for row, (t, s) in enumerate(chunk):
                yield RowEvent(row, t, s, TokenEvent("code", "x", (1,)))
            for row, (t, s) in reversed(list(enumerate(chunk))):
                if self.interrupt_after is not None and self.done >= self.interrupt_after:
                    raise KeyboardInterrupt
                result = self.script(tasks[t], s)
                self.done += 1
                yield RowEvent(row, t, s, DoneEvent(result))

    def close(self) -> None:
        self.closed = True
