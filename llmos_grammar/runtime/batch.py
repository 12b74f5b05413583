"""Many runs at once: continuous batching over one engine, actions on worker threads.

Every active row is a `Run` generator. Rows that ask for logits are stepped
together in one forward pass; a row that reaches an action waits alone while
its handler runs on a thread, and its output joins that row's next step. On a
segment engine (vLLM) each row's segment is a request in flight: rows wait
for their own segment or action only, and the engine batches the requests. A
finished row leaves at once and a waiting (task, sample) takes its place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import cast

from llmos_grammar.engines import (
    Engine,
    LogitsEngine,
    SegmentEngine,
    SegmentOutput,
    gives_logits,
    gives_segments,
)
from llmos_grammar.ir import Sampling
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.events import RowEvent
from llmos_grammar.runtime.host import RunHost
from llmos_grammar.runtime.loop import Run
from llmos_grammar.runtime.requests import ActionCall, Generate, Reply, Step
from llmos_grammar.runtime.row import Steps
from llmos_grammar.runtime.step import step_rows


@dataclass(frozen=True)
class Job:
    task_index: int
    sample: int
    task: str


class _Slot:
    """An active row: its run, where it stands, and what it waits for."""

    def __init__(self, job: Job, run: Run) -> None:
        self.job = job
        self.run = run
        self.gen: Steps = run.events()
        self.step: Step | None = None
        self.action: Future[ActionResult] | None = None  # in flight on a worker thread
        self.segment: Future[SegmentOutput] | None = None  # a request in flight

    def waiting_for(self) -> Future[ActionResult] | Future[SegmentOutput] | None:
        return self.action if self.action is not None else self.segment


class Batch:
    """Drives `jobs` through `rt`, at most `size` rows at a time; `events()` yields RowEvents."""

    def __init__(
        self, rt: RunHost, jobs: Sequence[Job], size: int, sampling: Sampling | None = None
    ) -> None:
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self.rt = rt
        self.waiting = deque(jobs)
        self.size = size
        self.sampling = sampling
        self.engine: Engine = rt.engine()
        logits = self.engine.capabilities.output == "logits"
        self.logits: LogitsEngine | None = gives_logits(self.engine) if logits else None
        self.segments: SegmentEngine | None = None if logits else gives_segments(self.engine)
        self.slots: dict[int, _Slot] = {}

    def events(self) -> Generator[RowEvent, None, None]:
        finished = False
        try:
            while self.waiting or self.slots:
                yield from self._admit()
                yield from self._collect_actions()
                steps = [s for s in self.slots.values() if s.step is not None]
                if steps:
                    yield from self._forward(steps)
                elif self.slots:
                    running = [f for s in self.slots.values() if (f := s.waiting_for())]
                    wait(cast("list[Future[object]]", running), return_when=FIRST_COMPLETED)
            finished = True
        finally:
            self._close(finished)

    def _admit(self) -> Iterator[RowEvent]:
        while self.waiting and len(self.slots) < self.size:
            job = self.waiting.popleft()
            run = Run(
                self.rt,
                job.task,
                engine=self.engine,
                sampling=self.sampling,
                key=(job.task_index, job.sample),
            )
            slot = _Slot(job, run)
            self.slots[run.seq.row] = slot
            yield from self._advance(slot, None)

    def _collect_actions(self) -> Iterator[RowEvent]:
        """Rows whose action or segment is done go on with its result (or its error)."""
        for slot in list(self.slots.values()):
            future = slot.waiting_for()
            if future is None or not future.done():
                continue
            slot.action = slot.segment = None
            error = future.exception()
            if error is not None:
                yield from self._advance(slot, None, error)
            else:
                yield from self._advance(slot, future.result())

    def _forward(self, steps: list[_Slot]) -> Iterator[RowEvent]:
        if self.logits is None:
            raise TypeError("an engine that gives segments gives no logits: rows ask for segments")
        requests = [s.step for s in steps if s.step is not None]
        replies = step_rows(self.logits, self.rt.masks, self.rt.mask_worker, requests)
        for slot, reply in zip(steps, replies, strict=True):
            slot.step = None
            yield from self._advance(slot, reply)

    def _advance(
        self, slot: _Slot, value: Reply, error: BaseException | None = None
    ) -> Iterator[RowEvent]:
        """Run the row until it asks for something; pass its events on."""
        row = slot.run.seq.row
        while True:
            try:
                item = slot.gen.throw(error) if error is not None else slot.gen.send(value)
            except StopIteration:
                del self.slots[row]
                slot.run.seq.close()
                return
            value, error = None, None
            if isinstance(item, Step):
                slot.step = item
                return
            if isinstance(item, ActionCall):
                slot.action = self.rt.submit_action(item.action, item.text)
                return
            if isinstance(item, Generate):
                if self.segments is None:
                    raise TypeError("a segment was asked of an engine that gives logits")
                slot.segment = self.segments.generate(item.row, item.params)
                return
            yield RowEvent(row, slot.job.task_index, slot.job.sample, item)

    def _close(self, finished: bool) -> None:
        """End every row; when interrupted, stop running actions and their threads."""
        running = [s.action for s in self.slots.values() if s.action is not None]
        for slot in self.slots.values():
            if slot.segment is not None:
                slot.segment.cancel()  # a segment not yet sent is not sent
            slot.gen.close()
            slot.run.seq.close()  # the engine outlives the batch: give the row back
        self.slots.clear()
        if not finished and running:
            self.rt.abort_actions(running)
