"""One run of a machine: the decode loop with constraints, triggers, forced text and actions.

A run is a generator (see requests.py): it yields events, and a `Step` each
time it needs next-token logits, so that one driver can step many runs in one
forward pass (runtime/batch.py); on a segment engine it yields a `Generate`
per segment instead (segments.py). Each run owns its state, matcher,
captures, budgets, transcript, stats and sampling generator.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from llmos_grammar.constraints import apply_mask
from llmos_grammar.engines import gives_logits
from llmos_grammar.errors import DecodeError
from llmos_grammar.ir import ActionState, FinalState, GrammarState, TextState
from llmos_grammar.runtime.events import DoneEvent, Event, Result, Stop, StopReason, TokenEvent
from llmos_grammar.runtime.pieces import joined, trusted
from llmos_grammar.runtime.prompt import encode, prompt_pieces
from llmos_grammar.runtime.requests import MatcherError, Reply, Request, Step, StepReply
from llmos_grammar.runtime.row import Steps
from llmos_grammar.runtime.sampling import sample
from llmos_grammar.runtime.segments import SegmentDecode
from llmos_grammar.runtime.step import step_rows


class Run(SegmentDecode):
    """The mutable state of one run; `events()` drives it."""

    # ---- the run ------------------------------------------------------------
    def events(self) -> Steps:
        machine = self.rt.machine
        prompt = self.turn
        if prompt is None:
            prompt = prompt_pieces(machine.prompt, self.rt.lm.tokenizer, self.task)
        prompt_ids = encode(self.rt.lm.tokenizer, prompt)
        self.seq.append(prompt_ids)
        self.seq.mark_floor()
        self.stats.prompt_tokens = len(prompt_ids)
        self.add_text("prompt", joined(prompt))
        reason: StopReason = "final"
        message = ""
        try:
            if machine.prompt.assistant_prefix:
                self.queue_text(trusted(machine.prompt.assistant_prefix))
                self.add_text("forced", machine.prompt.assistant_prefix)
                yield TokenEvent(self.state, machine.prompt.assistant_prefix, (), forced=True)
            yield from self.enter(machine.start, "start", announce=False)
            while True:
                state = machine.states[self.state]
                if isinstance(state, FinalState):
                    message = f"reached final state {self.state!r}"
                    break
                if isinstance(state, ActionState):
                    yield from self._action(state)
                elif self._segmented():
                    yield from self._decode_segments(state)
                else:
                    yield from self._decode(state)
        except Stop as stop:
            reason, message = stop.reason, stop.message
        yield DoneEvent(self._result(reason, message))

    def _result(self, reason: StopReason, message: str) -> Result:
        self._finish_stats()
        seq = self.seq
        return Result(
            text="".join(s.text for s in self.segments if s.source != "prompt"),
            final_state=self.state,
            stop_reason=reason,
            message=message,
            transcript=tuple(self.segments),
            actions=tuple(self.actions),
            stats=self.stats,
            prompt_ids=tuple(seq.ids[: seq.floor]),
            completion_ids=tuple(seq.ids[seq.floor :]),
            chosen=tuple(seq.chosen[seq.floor :]),
        )

    def _finish_stats(self) -> None:
        now = time.perf_counter()
        self.stats.total_s = now - self.t0
        self.stats.forward_passes = self.seq.forward_passes - self.passes0
        fed = self.seq.forward_tokens - self.fed0
        self.stats.forced_tokens = fed - self.stats.prompt_tokens
        self.stats.forced_tokens -= self.stats.generated_tokens
        self.stats.forced_tokens = max(0, self.stats.forced_tokens)
        start = self.first_token_at if self.first_token_at is not None else now
        self.stats.time_to_first_token_s = start - self.t0
        begun = self.decode_from if self.decode_from is not None else start
        self.stats.decode_s = max(0.0, now - begun - self.stats.action_s)

    # ---- text and grammar states ---------------------------------------------
    def _decode(self, state: TextState | GrammarState) -> Steps:
        """Sample one token at a time from the row's logits (token-level engines)."""
        rt = self.rt
        compiled = rt.constraints.get(state.name)
        matcher = compiled.new() if compiled is not None else None
        visit = self.new_visit(state, matcher)
        if matcher is not None:
            entry = matcher.forced()
            if entry and (yield from self.replay_entry(visit, entry)):
                return
        while True:
            self._check_budgets(visit.steps, state.max_tokens)
            logits = yield from self._logits(matcher, visit.steps)
            if rt.logits_processors:
                text = bytes(visit.state_bytes).decode("utf-8", "replace")
                for processor in rt.logits_processors:
                    processor(self.state, text, logits)
            token = sample(logits, state.sampling or self.sampling, self.generator)
            if (yield from self.replay_token(visit, token, _all)):
                return

    def _logits(self, matcher: Any, steps: int) -> Generator[Event | Request, Reply, Any]:
        """Ask for this row's next-token logits (masked by `matcher`); returns a copy."""
        request = Step(self.seq.row, matcher)
        reply = yield request
        if reply is None:  # driven by hand: step this row alone
            engine = gives_logits(self.seq.engine)
            reply = step_rows(engine, self.rt.masks, self.rt.mask_worker, [request])[0]
        if not isinstance(reply, StepReply):
            raise TypeError(f"a step was answered with {type(reply).__name__}")
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        logits = reply.logits.clone()
        if matcher is None:
            return logits
        if isinstance(reply.allowed, MatcherError):
            last = self.seq.ids[-1] if self.seq.ids else None
            raise DecodeError(f"matcher error: {reply.allowed}", self.state, steps, last)
        if not bool(reply.allowed.any()):
            raise DecodeError("no token is allowed by the grammar", self.state, steps, None)
        return apply_mask(logits, reply.allowed)


def _all(forced: list[int]) -> list[int]:
    return forced
