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
from dataclasses import dataclass

from llmos_grammar.ir import Sampling
from llmos_grammar.runtime.events import RowEvent
from llmos_grammar.runtime.host import RunHost
from llmos_grammar.runtime.loop import Run
from llmos_grammar.runtime.slots import Item, RowFailed, Slots


@dataclass(frozen=True)
class Job:
    task_index: int
    sample: int
    task: str


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
        self.engine = rt.engine()
        self.slots: Slots[Job] = Slots(self.engine, rt.masks, rt.mask_worker)

    def events(self) -> Generator[RowEvent, None, None]:
        finished = False
        try:
            while self.waiting or len(self.slots):
                yield from self._admit()
                yield from self._events(self.slots.round())
            finished = True
        finally:
            self.slots.close(finished)

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
            yield from self._events(self.slots.start(job, run))

    @staticmethod
    def _events(items: Iterator[Item[Job]]) -> Iterator[RowEvent]:
        for slot, event in items:
            if isinstance(event, RowFailed):  # only isolating drivers get these
                raise event.error
            yield RowEvent(slot.run.seq.row, slot.key.task_index, slot.key.sample, event)
