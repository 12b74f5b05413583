"""Events kept as a run yields them, for a page at its end: one run (`EventLog`) or every
task of an evaluation (`TraceRecorder`, a stand-in for the runtime `evaluate` drives)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from llmos_grammar.runtime.events import DoneEvent, Event, RowEvent
from llmos_grammar.trace import TRACE_VERSION, Trace
from llmos_grammar.viewer.header import run_header

if TYPE_CHECKING:
    from llmos_grammar.eval.runner import TaskResult
    from llmos_grammar.ir import Sampling
    from llmos_grammar.runtime import Runtime


class EventLog:
    """One run's events with the seconds at which each came; `trace()` reads them as a Trace."""

    def __init__(self, header: Mapping[str, object]) -> None:
        self.header = {"kind": "header", "llmos_trace": TRACE_VERSION, **header}
        self.events: list[Event] = []
        self.times: list[float] = []
        self._t0 = time.perf_counter()

    def add(self, event: Event) -> None:
        self.events.append(event)
        self.times.append(round(time.perf_counter() - self._t0, 6))

    def trace(self) -> Trace:
        return Trace(dict(self.header), tuple(self.events), tuple(self.times))


class TraceRecorder:
    """A runtime's `stream_batch`, passed through, keeping each finished run's events by its
    task text and sample; `voted_traces` gives every task's voted sample's trace."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.finished: dict[tuple[str, int], list[Trace]] = {}
        self._header = run_header(runtime.machine, "", runtime)  # each run's, but its task

    def stream_batch(
        self,
        tasks: Sequence[str],
        samples: int = 1,
        batch: int = 8,
        sampling: Sampling | None = None,
    ) -> Iterator[RowEvent]:
        logs: dict[tuple[int, int], EventLog] = {}
        for item in self.runtime.stream_batch(tasks, samples, batch, sampling):
            key = (item.task_index, item.sample)
            task = tasks[item.task_index]
            if key not in logs:
                logs[key] = EventLog({**self._header, "task": task})
            logs[key].add(item.event)
            if isinstance(item.event, DoneEvent):
                trace = logs.pop(key).trace()
                self.finished.setdefault((task, item.sample), []).append(trace)
            yield item

    def voted_traces(self, results: Sequence[TaskResult]) -> list[Trace | None]:
        """For each task result (in order) the trace of its voted sample; None where that
        sample never finished (a model error). Tasks with the same text take their traces
        in the order they finished."""
        taken: dict[tuple[str, int], int] = {}
        out: list[Trace | None] = []
        for result in results:
            key = (result.task.text, result.vote.winning_row)
            found = self.finished.get(key, [])
            n = taken.get(key, 0)
            out.append(found[n] if n < len(found) else None)
            taken[key] = n + 1
        return out
