"""A request in the engine's loop (`Job`) and each of its choices: a run's events -> ServeEvents.

A choice reads its run's text through the request machine's reader (content
without call markup, the tool calls as they end), ends its text at the first
stop string (the text after it is never sent: as much as the longest stop
string less one character waits until it is clear), and passes on what ran as
`llmos` records: a state entered, an action with its input, output and status.
"""

from __future__ import annotations

from collections.abc import Mapping

from llmos_grammar.runtime.events import (
    ActionFinished,
    ActionStarted,
    Event,
    InjectedEvent,
    Result,
    TokenEvent,
    TransitionEvent,
)
from llmos_grammar.runtime.loop import Run
from llmos_grammar.serve.sched_host import RowHost
from llmos_grammar.serve.sched_plan import Plan
from llmos_grammar.serve.ticket import ServeTicket
from llmos_grammar.serve.traces_record import RowTrace
from llmos_grammar.serve.types import (
    ChoiceDone,
    FinishReason,
    LlmosDelta,
    Message,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)

Record = Mapping[str, object]


class Job:
    """One admitted (or queued) request: its plan, its ticket, its choices and their usage."""

    def __init__(self, plan: Plan, ticket: ServeTicket) -> None:
        self.plan = plan
        self.ticket = ticket
        self.choices: list[Choice] = []
        self.left = plan.request.n  # choices not finished yet
        self.cached = 0  # prompt ids taken from a kept row
        self.admitted = False
        self.ended = False  # done, failed or cancelled: nothing more is pushed
        self.failure: tuple[int, str] | None = None  # (status, message) when it failed

    @property
    def completion_tokens(self) -> int:
        return sum(c.generated for c in self.choices)

    def reply(self) -> Message | None:
        """The first choice's reply as a message (for a session's history)."""
        if not self.choices or not self.choices[0].done:
            return None
        first = self.choices[0]
        return Message("assistant", first.content, tool_calls=tuple(first.calls))


class Choice:
    """One choice of a job on its engine row (see the module docstring)."""

    def __init__(self, job: Job, index: int, run: Run, host: RowHost) -> None:
        self.job = job
        self.index = index
        self.run = run
        self.host = host
        self.reader = job.plan.shape.reader()
        self.stops = job.plan.request.stop
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.spec = job.plan.served.info.spec is not None
        self.hidden = job.plan.shape.tool_states | {job.plan.shape.tool_end or ""}
        self.content = ""
        self.sent = 0  # characters of `content` sent as TextDelta
        self.calls: list[ToolCall] = []
        self.records: list[Record] = []
        self.action_input = ""
        self.stopped = False  # a stop string ended the text
        self.cut: int | None = None  # the row's length where it did
        self.result: Result | None = None
        self.done = False
        self.trace: RowTrace | None = None  # llmos serve --traces: the row's events

    @property
    def generated(self) -> int:
        return self.run.row.stats.generated_tokens

    def on_event(self, event: Event) -> bool:
        """Pass an event of the run on; True when a stop string ended the choice."""
        if isinstance(event, TokenEvent | InjectedEvent):
            shown, calls = self.reader.feed(event.state, event.text)
            self._calls(calls)
            return self._text(shown)
        if isinstance(event, TransitionEvent) and self.spec:
            if event.target not in self.hidden and event.source not in self.hidden:
                self._record({"type": "state", "state": event.target, "trigger": event.trigger})
        elif isinstance(event, ActionStarted):
            self.action_input = event.input
        elif isinstance(event, ActionFinished):
            r = event.result
            self._record(
                {
                    "type": "action",
                    "state": event.state,
                    "action": event.action,
                    "input": self.action_input,
                    "output": r.stdout + r.stderr,
                    "status": r.status,
                    "exit_code": r.exit_code,
                    "limit_hit": r.limit_hit,
                    "duration_s": r.duration_s,
                }
            )
        return False

    def finish(self, reason: FinishReason | None = None) -> None:
        """Send what was held back, the calls and the ChoiceDone; `reason` overrides the
        run's own (a time limit)."""
        if not self.stopped:
            shown, calls = self.reader.finish()
            self._calls(calls)
            self._text(shown)
        self._send(len(self.content))
        self.done = True
        finish_reason = self._reason(reason)
        kept = None if self.trace is None else self.trace.keep(finish_reason)
        if kept is not None:
            self._record(kept)  # the trace's id, once it is viewable
        self._push(
            ChoiceDone(
                self.index,
                finish_reason,
                self.content,
                tuple(self.calls),
                tuple(self.records),
            )
        )

    def _reason(self, reason: FinishReason | None) -> FinishReason:
        if self.stopped:
            return "stop"
        if reason is not None or self.result is None:
            return reason or "length"
        found = self.job.plan.shape.finish_reason(self.result)
        if found == "stop" and self.result.stop_reason in ("wall_s", "max_actions"):
            return "length"
        return found

    def _text(self, text: str) -> bool:
        """Add visible text; True when it completes a stop string (then the text ends there)."""
        if self.stopped or not text:
            return False
        before = len(self.content)
        self.content += text
        if not self.stops:
            self._send(len(self.content))
            return False
        start = max(0, before - self.hold)
        hits = [at for s in self.stops if (at := self.content.find(s, start)) >= 0]
        if hits:
            self.content = self.content[: min(hits)]
            self.stopped = True
            self.cut = len(self.run.seq.ids)
            self._send(len(self.content))
            return True
        self._send(len(self.content) - self.hold)
        return False

    def _send(self, upto: int) -> None:
        if upto > self.sent:
            self._push(TextDelta(self.index, self.content[self.sent : upto]))
            self.sent = upto

    def _calls(self, calls: tuple[ToolCall, ...]) -> None:
        for call in calls:
            if self.stopped:
                return
            self._push(ToolCallDelta(self.index, len(self.calls), call))
            self.calls.append(call)

    def _record(self, record: Record) -> None:
        self.records.append(record)
        self._push(LlmosDelta(self.index, record))

    def _push(self, event: TextDelta | LlmosDelta | ToolCallDelta | ChoiceDone) -> None:
        if not self.job.ended:
            self.job.ticket.push(event)
