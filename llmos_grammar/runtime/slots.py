"""The active rows of one engine: one forward pass for every row that asks, actions on threads.

Each row is a `Run` generator in a `Slot`, keyed by whatever its driver tracks
(a (task, sample) pair, a served request's choice). Rows that ask for logits
are stepped together in one forward pass; a row at an action waits alone
while its host runs the handler on a thread; on a segment engine each row's
segment is a request in flight. Rows join (`start`) and leave between passes:
a driver may end a row at any time (`end`), from its own events included, and
an isolating driver gets a row's error as a `RowFailed` instead of a raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from llmos_grammar.constraints import MaskBuffer
from llmos_grammar.engines import (
    Engine,
    LogitsEngine,
    SegmentEngine,
    SegmentOutput,
    gives_logits,
    gives_segments,
)
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.events import Event
from llmos_grammar.runtime.host import RunHost
from llmos_grammar.runtime.loop import Run
from llmos_grammar.runtime.requests import ActionCall, Generate, Reply, Step
from llmos_grammar.runtime.row import Steps
from llmos_grammar.runtime.step import step_rows

K = TypeVar("K")


@dataclass(frozen=True)
class RowFailed:
    """A row's run raised (an isolating driver's rows only): the row has left, here is why."""

    error: Exception


class Slot(Generic[K]):
    """An active row: its key, its run, where it stands, and what it waits for."""

    def __init__(self, key: K, run: Run) -> None:
        self.key = key
        self.run = run
        self.gen: Steps = run.events()
        self.step: Step | None = None
        self.action: Future[ActionResult] | None = None  # in flight on a worker thread
        self.segment: Future[SegmentOutput] | None = None  # a request in flight
        self.gone = False  # it left: ended, finished or failed

    def waiting_for(self) -> Future[ActionResult] | Future[SegmentOutput] | None:
        return self.action if self.action is not None else self.segment


Item = tuple[Slot[K], Event | RowFailed]


class Slots(Generic[K]):
    """Rows over one engine (see the module docstring).

    `isolate`: a row whose run raises leaves alone (a `RowFailed` item) and the
    others go on; otherwise the error ends the driver. `close_rows`: a row that
    leaves gives its engine row back; without it the driver owns the row after.
    """

    def __init__(
        self,
        engine: Engine,
        masks: MaskBuffer,
        mask_worker: ThreadPoolExecutor,
        *,
        isolate: bool = False,
        close_rows: bool = True,
    ) -> None:
        self.engine = engine
        logits = engine.capabilities.output == "logits"
        self.logits: LogitsEngine | None = gives_logits(engine) if logits else None
        self.segments: SegmentEngine | None = None if logits else gives_segments(engine)
        self.masks = masks
        self.mask_worker = mask_worker
        self.isolate = isolate
        self.close_rows = close_rows
        self.active: dict[int, Slot[K]] = {}  # by engine row

    def __len__(self) -> int:
        return len(self.active)

    def start(self, key: K, run: Run) -> Iterator[Item[K]]:
        """Add a row and run it until it first asks for something."""
        slot = Slot(key, run)
        self.active[run.seq.row] = slot
        yield from self._advance(slot, None)

    def round(
        self, timeout: float | None = None, bell: Future[None] | None = None
    ) -> Iterator[Item[K]]:
        """Rows whose action or segment is done go on; then one forward pass for every row
        that asks for logits, or else a wait (at most `timeout`) for an action, a segment or
        the `bell` (a driver's wake-up: a row to start or to end)."""
        yield from self._collect()
        steps = [s for s in self.active.values() if s.step is not None]
        if steps:
            yield from self._forward(steps)
            return
        waiting: list[Future[object]] = [
            cast("Future[object]", f) for s in self.active.values() if (f := s.waiting_for())
        ]
        if bell is not None:
            waiting.append(cast("Future[object]", bell))
        if waiting:
            wait(waiting, timeout=timeout, return_when=FIRST_COMPLETED)

    def end(self, slot: Slot[K]) -> None:
        """Take a row out now (also while it passes an event on): its run is closed, its
        action stopped, its segment not sent. Ending a row that left does nothing."""
        if slot.gone:
            return
        self.active.pop(slot.run.seq.row, None)
        slot.gone = True
        if slot.segment is not None:
            slot.segment.cancel()
        action, slot.action = slot.action, None
        slot.gen.close()
        if action is not None:
            slot.run.rt.abort_actions([action])
        if self.close_rows:
            slot.run.seq.close()

    def _collect(self) -> Iterator[Item[K]]:
        """Rows whose action or segment is done go on with its result (or its error)."""
        for slot in list(self.active.values()):
            future = slot.waiting_for()
            if future is None or not future.done():
                continue
            slot.action = slot.segment = None
            error = future.exception()
            if error is not None:
                yield from self._advance(slot, None, error)
            else:
                yield from self._advance(slot, future.result())

    def _forward(self, steps: list[Slot[K]]) -> Iterator[Item[K]]:
        if self.logits is None:
            raise TypeError("an engine that gives segments gives no logits: rows ask for segments")
        requests = [s.step for s in steps if s.step is not None]
        try:
            replies = step_rows(self.logits, self.masks, self.mask_worker, requests)
        except Exception as exc:
            if not self.isolate:
                raise
            for slot in steps:
                yield from self._fail(slot, exc)
            return
        for slot, reply in zip(steps, replies, strict=True):
            slot.step = None
            yield from self._advance(slot, reply)

    def _advance(
        self, slot: Slot[K], value: Reply, error: BaseException | None = None
    ) -> Iterator[Item[K]]:
        """Run the row until it asks for something, ends, or its driver ends it."""
        while True:
            try:
                item = slot.gen.throw(error) if error is not None else slot.gen.send(value)
            except StopIteration:
                self._leave(slot)
                return
            except Exception as exc:
                if not self.isolate:
                    raise
                yield from self._fail(slot, exc)
                return
            value, error = None, None
            if isinstance(item, Step):
                slot.step = item
                return
            if isinstance(item, ActionCall):
                slot.action = slot.run.rt.submit_action(item.action, item.text)
                return
            if isinstance(item, Generate):
                if self.segments is None:
                    raise TypeError("a segment was asked of an engine that gives logits")
                slot.segment = self.segments.generate(item.row, item.params)
                return
            yield slot, item
            if slot.gone:  # the driver ended it on this event
                return

    def _leave(self, slot: Slot[K]) -> None:
        self.active.pop(slot.run.seq.row, None)
        slot.gone = True
        if self.close_rows:
            slot.run.seq.close()

    def _fail(self, slot: Slot[K], exc: Exception) -> Iterator[Item[K]]:
        slot.step = None
        self.end(slot)
        yield slot, RowFailed(exc)

    def close(self, finished: bool) -> None:
        """End every row; when interrupted (not `finished`), stop running actions and their
        threads (one call per host, with that host's actions)."""
        running: dict[int, list[Future[ActionResult]]] = {}
        hosts: dict[int, RunHost] = {}
        for slot in self.active.values():
            slot.gone = True
            if slot.action is not None:
                running.setdefault(id(slot.run.rt), []).append(slot.action)
                hosts[id(slot.run.rt)] = slot.run.rt
            if slot.segment is not None:
                slot.segment.cancel()  # a segment not yet sent is not sent
            slot.gen.close()
            if self.close_rows:
                slot.run.seq.close()  # the engine outlives the rows: give the row back
        self.active.clear()
        if not finished:
            for key, futures in running.items():
                hosts[key].abort_actions(futures)
