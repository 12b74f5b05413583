"""One served choice's trace as its row runs (`RowTrace`), kept in the `TraceStore` when it ends.

The header is the one `llmos-run --trace` writes (spec, model, engine, backends, the state
graph of the request's machine) with the request's served model, choice and last user
message as its task; the events are every event the row yielded, with their times.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from llmos_grammar.runtime.events import Event
from llmos_grammar.serve.traces import KeptTrace, TraceStore, new_id, trace_jsonl
from llmos_grammar.serve.types import GenerationRequest
from llmos_grammar.viewer.header import run_header
from llmos_grammar.viewer.record import EventLog

if TYPE_CHECKING:
    from llmos_grammar.serve.sched_plan import Plan

TRACES_PATH = "/traces/"
CANCELLED = 499
TASK_SHOWN = 200  # characters of the task the index lists


class RowTrace:
    """The events of one choice's row; `keep` or `fail` puts its trace in the store once."""

    def __init__(self, store: TraceStore, plan: Plan, choice: int) -> None:
        self.store = store
        self.id = new_id()
        self.model = plan.served.info.id
        self.choice = choice
        self.task = task_of(plan.request)
        self.created = time.time()
        self.log = EventLog(trace_header(plan, choice, self.task))
        self.kept = False

    def add(self, event: Event) -> None:
        self.log.add(event)

    def keep(self, status: str) -> Mapping[str, object] | None:
        """Keep the trace with `status` (a finish reason); the `llmos` record naming it, or
        None when it was kept already or is too large to keep."""
        if self.kept:
            return None
        self.kept = True
        trace = self.log.trace()
        task = self.task[:TASK_SHOWN]
        kept = KeptTrace(
            self.id, self.model, self.choice, self.created, status, task, trace_jsonl(trace)
        )
        if not self.store.put(kept):
            return None
        return {"type": "trace", "id": self.id, "url": TRACES_PATH + self.id}

    def fail(self, failure: tuple[int, str] | None) -> None:
        """Keep the trace of a choice its failed or cancelled request ended early."""
        if failure is None:
            self.keep("ended")
        elif failure[0] == CANCELLED:
            self.keep("cancelled")
        else:
            self.keep(f"failed ({failure[0]}): {failure[1]}")


def begin(store: TraceStore | None, plan: Plan, choice: int) -> RowTrace | None:
    """The trace of a choice's row about to start; None when the server keeps no traces."""
    return None if store is None else RowTrace(store, plan, choice)


def trace_header(plan: Plan, choice: int, task: str) -> dict[str, object]:
    """What `llmos-run --trace` writes of a run, for the request's machine on its engine."""
    group = plan.served.group
    header = run_header(plan.machine, task)
    header["model"] = group.lm.name
    header["engine"] = group.lm.engine
    header["vocab_size"] = group.table.vocab_size
    header["backends"] = {name: c.backend for name, c in plan.constraints.items()}
    header["served_model"] = plan.served.info.id
    header["choice"] = choice
    return header


def task_of(request: GenerationRequest) -> str:
    """The request's last user message, or its raw prompt (untrusted text)."""
    if request.prompt is not None:
        return request.prompt
    users = [m.content for m in request.messages if m.role == "user"]
    return users[-1] if users else ""
