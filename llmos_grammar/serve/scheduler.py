"""`BatchScheduler`: the `Scheduler` of `llmos serve` (requests -> rows of one batch per engine).

`submit` plans a request on the caller's thread (its machine with the request's
constraints, its exact prompt ids) and queues it on its model's engine loop
(sched_loop.py), where it becomes `n` rows of the running batch; its `Ticket`
carries the events back. The queue is bounded (`QueueFull`); `drain` refuses
new requests and gives running ones a grace period; `close` ends everything.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from llmos_grammar.serve.kept import DEFAULT_BYTES, Replies
from llmos_grammar.serve.models import EngineGroup, ServedSet, load_served
from llmos_grammar.serve.sched_choice import Job
from llmos_grammar.serve.sched_loop import SHUTDOWN, EngineLoop
from llmos_grammar.serve.sched_plan import Planner
from llmos_grammar.serve.sched_sessions import Sessions
from llmos_grammar.serve.ticket import ServeTicket
from llmos_grammar.serve.traces import TraceStore
from llmos_grammar.serve.types import (
    BadRequest,
    Draining,
    GenerationRequest,
    QueueFull,
    SchedulerStats,
    ServedModel,
    UnknownModel,
)

REQUEST_TIMEOUT_S = 600.0  # a request's wall clock, queue included
CANCELLED = 499  # the client closed the request


class BatchScheduler:
    """Serves `specs` (and each model plain) with one continuously batched engine per model.

    `engine` and `engine_args` choose what runs the models (default: each spec's
    engine); `batch` rows decode together per engine; at most `max_queue`
    requests wait for rows; a finished conversation's cache is kept
    `session_ttl` seconds, within `kept_bytes` per engine; `yes` approves actions
    whose policy says `confirm: ask`. `reuse=False` keeps no finished row (every
    request prefills its whole prompt: the baseline cache reuse is measured
    against). `served` gives models already loaded (`models.served_on`) instead
    of spec files. `traces` keeps every choice's trace (`llmos serve --traces N`).
    """

    def __init__(
        self,
        specs: Sequence[str | Path] = (),
        *,
        engine: str | None = None,
        engine_args: Mapping[str, str] | None = None,
        batch: int = 8,
        max_queue: int = 64,
        session_ttl: float = 600.0,
        yes: bool = False,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        kept_bytes: int = DEFAULT_BYTES,
        reuse: bool = True,
        served: ServedSet | None = None,
        traces: TraceStore | None = None,
    ) -> None:
        if batch < 1 or max_queue < 1:
            raise ValueError(f"batch and max_queue must be at least 1 (got {batch}, {max_queue})")
        self.served = served or load_served(specs, engine=engine, engine_args=engine_args)
        self.batch = batch
        self.max_queue = max_queue
        self.replies = Replies()
        self.planner = Planner(self.replies, request_timeout_s)
        self.sessions = Sessions(session_ttl)
        self._lock = threading.Lock()
        self._live: set[Job] = set()
        self._draining = False
        self._closed = False
        self.totals = [0, 0, 0]  # prompt, cached, completion tokens since start
        self.loops: dict[int, EngineLoop] = {}
        for group in self.served.groups:
            self.loops[id(group)] = EngineLoop(
                group,
                batch=batch,
                ttl_s=session_ttl,
                replies=self.replies,
                yes=yes,
                on_end=self._ended,
                kept_bytes=kept_bytes,
                reuse=reuse,
                traces=traces,
            )

    # ---- the Scheduler protocol -----------------------------------------------------
    def models(self) -> tuple[ServedModel, ...]:
        return self.served.models()

    def submit(self, request: GenerationRequest) -> ServeTicket:
        """Plan and queue a request; UnknownModel, BadRequest, QueueFull or Draining."""
        if self._draining or self._closed:
            raise Draining("the server is shutting down and takes no new requests")
        served = self.served.by_id.get(request.model)
        if served is None:
            names = ", ".join(sorted(self.served.by_id))
            raise UnknownModel(
                f"model {request.model!r} is not served here; the served models are: {names}",
                param="model",
                code="model_not_found",
            )
        if request.n > self.batch:
            raise BadRequest(
                f"n is {request.n}, and this server decodes at most {self.batch} rows at once",
                param="n",
            )
        if request.session is not None and request.n != 1:
            raise BadRequest("a session continues one reply: n must be 1", param="n")
        history = self.sessions.begin(request.session, served.info.id) if request.session else ()
        try:
            plan = self.planner.plan(served, request, history)
            loop = self._loop(served.group)
            with self._lock:
                waiting = sum(lp.queued() for lp in self.loops.values())
                if waiting >= self.max_queue:
                    raise QueueFull(
                        f"{waiting} requests are waiting for a row (at most {self.max_queue}): "
                        "retry later",
                        retry_after_s=self._retry_after(waiting),
                    )
                ticket = ServeTicket()
                job = Job(plan, ticket)
                ticket.on_cancel = lambda _: loop.cancel(
                    job, CANCELLED, "the request was cancelled"
                )
                self._live.add(job)
            loop.submit(job)
            return ticket
        except BaseException:
            if request.session is not None:
                self.sessions.end(request.session, None)
            raise

    def stats(self) -> SchedulerStats:
        loops = list(self.loops.values())
        prompt, cached, completion = self.totals
        return SchedulerStats(
            queued=sum(lp.queued() for lp in loops),
            running_rows=sum(len(lp.slots) for lp in loops),
            kept_rows=sum(len(lp.kept) for lp in loops),
            kept_bytes=sum(lp.kept.bytes for lp in loops),
            prompt_tokens=prompt,
            cached_tokens=cached,
            completion_tokens=completion,
        )

    def drain(self, grace_s: float) -> None:
        """Refuse new requests; let the accepted ones finish for `grace_s`, then end the rest
        (503, their actions killed)."""
        self._draining = True
        deadline = time.monotonic() + grace_s
        for job in self._jobs():
            job.ticket.wait(max(0.0, deadline - time.monotonic()))
        for job in self._jobs():
            self._loop(job.plan.served.group).cancel(job, *SHUTDOWN)
        ended = time.monotonic() + 5.0  # the loop ends them between two passes
        for job in self._jobs():
            job.ticket.wait(max(0.0, ended - time.monotonic()))

    def close(self) -> None:
        """End every request and loop, then the engines and the models loaded for them."""
        if self._closed:
            return
        self._closed = True
        for loop in self.loops.values():
            loop.stop()
        self.served.close()

    # ---- beyond the protocol ----------------------------------------------------------
    def actions_running(self) -> int:
        """Actions running now on any row (their sandboxes alive)."""
        return sum(lp.actions_running() for lp in self.loops.values())

    def _loop(self, group: EngineGroup) -> EngineLoop:
        return self.loops[id(group)]

    def _jobs(self) -> list[Job]:
        with self._lock:
            return list(self._live)

    def _retry_after(self, waiting: int) -> int:
        """Seconds a client should wait: about one batch's turn per batch of waiting requests."""
        return max(1, math.ceil(waiting / max(1, self.batch)))

    def _ended(self, job: Job) -> None:
        """A job ended (the loop's thread): totals, its session's conversation."""
        with self._lock:
            self._live.discard(job)
            if job.failure is None:
                self.totals[0] += len(job.plan.prompt.ids)
                self.totals[1] += job.cached
                self.totals[2] += job.completion_tokens
        session = job.plan.request.session
        if session is not None:
            reply = job.reply() if job.failure is None else None
            self.sessions.end(session, None if reply is None else (*job.plan.messages, reply))

    def __enter__(self) -> BatchScheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
