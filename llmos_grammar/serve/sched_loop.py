"""One engine's loop: requests join and leave its continuously batched rows between passes.

The loop runs on its own thread. Requests arrive in a queue from any thread
(`submit`), as do cancellations; the loop admits a request when its `n` rows
fit the batch, starting each row from the kept row that shares most of its
prompt (taken over when the prompt continues it, copied from when it parts
from it) or from an empty row. Rows step together (runtime/slots.py); a
finished row is kept with its exact ids (kept.py) and its reply remembered as
those ids, so the next turn of the conversation appends only what is new.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor, wait

from llmos_grammar.constraints import MaskBuffer
from llmos_grammar.runtime.events import DoneEvent
from llmos_grammar.runtime.loop import Run
from llmos_grammar.runtime.slots import Item, RowFailed, Slots
from llmos_grammar.serve.kept import DEFAULT_BYTES, DEFAULT_ROWS, KeptRows, Replies
from llmos_grammar.serve.models import EngineGroup
from llmos_grammar.serve.sched_choice import Choice, Job
from llmos_grammar.serve.sched_host import LoopParts, RowHost
from llmos_grammar.serve.sched_rows import RowStore
from llmos_grammar.serve.traces import TraceStore
from llmos_grammar.serve.traces_record import begin
from llmos_grammar.serve.types import FinishReason, RequestDone, RequestFailed, Usage

log = logging.getLogger("llmos.serve")
ACTION_THREADS = 16
MAX_WAIT_S = 5.0  # the longest the loop sleeps without looking at time limits
SHUTDOWN = (503, "the server is shutting down")  # a request the shutdown ended: code shutdown


class EngineLoop:
    """The rows of one engine group (see the module docstring)."""

    def __init__(
        self,
        group: EngineGroup,
        *,
        batch: int,
        ttl_s: float,
        replies: Replies,
        yes: bool,
        on_end: Callable[[Job], None],
        kept_bytes: int = DEFAULT_BYTES,
        reuse: bool = True,
        traces: TraceStore | None = None,
    ) -> None:
        self.group = group
        self.traces = traces  # --traces: each row's events kept there
        self.batch = batch
        self.replies = replies
        self.on_end = on_end
        rows = DEFAULT_ROWS if reuse else 0
        self.kept = KeptRows(group.engine, ttl_s=ttl_s, max_bytes=kept_bytes, max_rows=rows)
        self.store = RowStore(group, self.kept, replies)
        self.parts = LoopParts(
            group.lm,
            group.engine,
            group.table,
            MaskBuffer(group.table.vocab_size),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmos-mask"),
            ThreadPoolExecutor(ACTION_THREADS, thread_name_prefix="llmos-action"),
            yes,
            set(),
            threading.Lock(),
        )
        self.slots: Slots[Choice] = Slots(
            group.engine, self.parts.masks, self.parts.mask_worker, isolate=True, close_rows=False
        )
        self.running: list[Job] = []  # admitted and not ended (the loop's thread only)
        self._lock = threading.Lock()
        self._inbox: deque[Job] = deque()
        self._cancels: list[tuple[Job, int, str]] = []
        self._bell: Future[None] = Future()
        self._stopping = False
        self.thread = threading.Thread(target=self._main, name=f"llmos-serve-{group.name}")
        self.thread.daemon = True
        self.thread.start()

    # ---- from any thread ------------------------------------------------------------
    def submit(self, job: Job) -> None:
        with self._lock:
            self._inbox.append(job)
        self._ring()

    def cancel(self, job: Job, status: int, message: str) -> None:
        """End the job at once (its rows freed, its actions killed) with this failure."""
        with self._lock:
            self._cancels.append((job, status, message))
        self._ring()

    def queued(self) -> int:
        return len(self._inbox)

    def actions_running(self) -> int:
        with self.parts.lock:
            return len(self.parts.in_flight)

    def stop(self) -> None:
        """End every request (503), close the kept rows; returns when the thread ended."""
        with self._lock:
            self._stopping = True
        self._ring()
        self.thread.join()

    def _ring(self) -> None:
        with self._lock:
            bell = self._bell
        if not bell.done():
            with contextlib.suppress(InvalidStateError):  # rung twice at once
                bell.set_result(None)

    def _arm(self) -> Future[None]:
        with self._lock:
            if self._bell.done():
                self._bell = Future()
            return self._bell

    # ---- the loop's thread ----------------------------------------------------------
    def _main(self) -> None:
        try:
            while True:
                bell = self._arm()
                with self._lock:
                    if self._stopping:
                        break
                self._take_cancels()
                self._overdue()
                self.kept.expire()
                self._admit()
                timeout = self._timeout()
                if len(self.slots):
                    self._consume(self.slots.round(timeout, bell))
                else:
                    wait([bell], timeout=timeout)
        except Exception:
            log.exception("the serving loop of %s failed", self.group.name)
        finally:
            self._shutdown()

    def _timeout(self) -> float:
        now = time.monotonic()
        with self._lock:
            waiting = list(self._inbox)
        ends = [job.plan.deadline - now for job in (*self.running, *waiting)]
        expiry = self.kept.next_expiry()
        if expiry is not None:
            ends.append(expiry + 0.01)
        return max(0.0, min([MAX_WAIT_S, *ends]))

    def _admit(self) -> None:
        while True:
            with self._lock:
                if not self._inbox:
                    return
                job = self._inbox[0]
                if len(self.slots) and len(self.slots) + job.plan.request.n > self.batch:
                    return
                self._inbox.popleft()
            if job.ended:
                continue
            if time.monotonic() > job.plan.deadline:
                self._end(job, (503, "the request waited in the queue past its time limit"))
                continue
            self._start(job)

    def _start(self, job: Job) -> None:
        job.admitted = True
        self.running.append(job)
        plan = job.plan
        running = sum(len(s.run.seq.ids) for s in self.slots.active.values())
        try:
            rows = self.store.rows(job, running)
        except Exception as exc:
            log.exception("no row for a request on %s", self.group.name)
            self._end(job, (500, f"no engine row for the request: {exc}"))
            return
        for index, (seq, runner) in enumerate(rows):
            host = RowHost(
                self.parts, plan.machine, plan.constraints, plan.budgets, plan.sampling, runner
            )
            host.details = self.traces is not None and self.traces.details
            run = Run(host, "", seq=seq, turn=(), sampling=plan.sampling, key=(0, index))
            choice = Choice(job, index, run, host)
            choice.trace = begin(self.traces, plan, index)
            job.choices.append(choice)
        for choice in list(job.choices):
            if job.ended:
                break
            self._consume(self.slots.start(choice, choice.run))

    def _consume(self, items: Iterator[Item[Choice]]) -> None:
        for slot, event in items:
            choice = slot.key
            if isinstance(event, RowFailed):
                self._failed(choice, event.error)
                continue
            if choice.trace is not None and not choice.job.ended:
                choice.trace.add(event)
            try:
                if choice.job.ended:
                    self.slots.end(slot)
                elif isinstance(event, DoneEvent):
                    choice.result = event.result
                    self._finish(choice)
                elif choice.on_event(event):  # a stop string ended its text
                    self._finish(choice)
            except Exception as exc:  # reading the reply failed: this request alone fails
                self._failed(choice, exc)

    def _finish(self, choice: Choice, reason: FinishReason | None = None) -> None:
        """A choice is done: its row leaves the batch and is kept, its reply remembered."""
        slot = self.slots.active.get(choice.run.seq.row)
        if slot is not None:
            self.slots.end(slot)
        choice.finish(reason)
        self.store.keep(choice)
        job = choice.job
        job.left -= 1
        if job.left == 0:
            self._end(job, None)

    def _failed(self, choice: Choice, error: Exception) -> None:
        """A row's run raised: the whole request fails with the reason (never a traceback)."""
        log.error("a row of %s failed: %s", choice.job.plan.served.info.id, error, exc_info=error)
        self._end(choice.job, (500, f"the run failed: {error}"))

    def _end(self, job: Job, failure: tuple[int, str] | None) -> None:
        """The job ends: done (RequestDone) or failed (its unfinished rows closed)."""
        if job.ended:
            return
        if failure is not None:
            job.failure = failure
            for choice in job.choices:
                if not choice.done:
                    self._drop(choice)
        job.ended = True
        if job in self.running:
            self.running.remove(job)
        self.on_end(job)  # before the last event: a session's next request may follow at once
        if failure is None:
            usage = Usage(len(job.plan.prompt.ids), job.completion_tokens, job.cached)
            job.ticket.push(RequestDone(usage))
        else:
            status, message = failure
            kind = "invalid_request_error" if status < 500 else "server_error"
            code = "shutdown" if failure == SHUTDOWN else None
            job.ticket.push(RequestFailed(status, message, kind, code=code))

    def _drop(self, choice: Choice) -> None:
        """End an unfinished choice's row now: its actions killed, its row closed."""
        choice.done = True
        if choice.trace is not None:
            choice.trace.fail(choice.job.failure)
        slot = self.slots.active.get(choice.run.seq.row)
        if slot is not None:
            self.slots.end(slot)
        choice.host.abort_actions([])
        choice.run.seq.close()

    def _take_cancels(self) -> None:
        with self._lock:
            cancels, self._cancels = self._cancels, []
            for job, _, _ in cancels:
                if job in self._inbox:
                    self._inbox.remove(job)
        for job, status, message in cancels:
            self._end(job, (status, message))

    def _overdue(self) -> None:
        """Requests past their time limit end now, with what they wrote ("length")."""
        now = time.monotonic()
        for job in [j for j in self.running if now > j.plan.deadline]:
            for choice in job.choices:
                if not choice.done:
                    slot = self.slots.active.get(choice.run.seq.row)
                    if slot is not None:
                        self.slots.end(slot)
                    choice.host.abort_actions([])
                    self._finish(choice, "length")

    def _shutdown(self) -> None:
        """The loop ends: every request fails (503), every row and thread is closed."""
        with self._lock:
            waiting, self._inbox = list(self._inbox), deque()
        for job in [*self.running, *waiting]:
            self._end(job, SHUTDOWN)
        self.slots.close(finished=False)
        self.kept.close()
        self.parts.actions.shutdown(wait=False, cancel_futures=True)
        self.parts.mask_worker.shutdown(wait=True)
