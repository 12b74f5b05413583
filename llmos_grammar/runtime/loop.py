"""One run of a machine: the decode loop with constraints, triggers, forced text and actions.

A run is a generator (see requests.py): it yields events, and a `Step` each
time it needs next-token logits, so that one driver can step many runs in one
forward pass (runtime/batch.py). Each run owns its state, matcher, captures,
budgets, transcript, stats and sampling generator.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from llmos_grammar.errors import DecodeError
from llmos_grammar.ir import ActionState, FinalState, GrammarState, TextState
from llmos_grammar.runtime import triggers as trig
from llmos_grammar.runtime.action_step import ActionStep
from llmos_grammar.runtime.events import (
    DoneEvent,
    Event,
    Result,
    Stop,
    StopReason,
    TokenEvent,
)
from llmos_grammar.runtime.masks import apply_mask
from llmos_grammar.runtime.prompt import encode, prompt_text
from llmos_grammar.runtime.requests import MatcherError, Reply, Request, Step, StepReply
from llmos_grammar.runtime.row import Steps
from llmos_grammar.runtime.sampling import sample
from llmos_grammar.runtime.step import step_rows


class Run(ActionStep):
    """The mutable state of one run; `events()` drives it."""

    # ---- the run ------------------------------------------------------------
    def events(self) -> Steps:
        machine = self.rt.machine
        prompt = self.turn
        if prompt is None:
            prompt = prompt_text(machine.prompt, self.rt.lm.tokenizer, self.task)
        prompt_ids = encode(self.rt.lm.tokenizer, prompt)
        self.seq.append(prompt_ids)
        self.seq.mark_floor()
        self.stats.prompt_tokens = len(prompt_ids)
        self.add_text("prompt", prompt)
        reason: StopReason = "final"
        message = ""
        try:
            if machine.prompt.assistant_prefix:
                self.queue_text(machine.prompt.assistant_prefix)
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
        self.stats.decode_s = max(0.0, now - start - self.stats.action_s)

    # ---- text and grammar states ---------------------------------------------
    def _decode(self, state: TextState | GrammarState) -> Steps:
        rt = self.rt
        compiled = rt.constraints.get(state.name)
        matcher = compiled.new() if compiled is not None else None
        state_bytes = bytearray()
        offsets: list[int] = []  # start of each token of this visit in state_bytes
        seg_start = len(self.seq.ids)
        if matcher is not None:
            entry = matcher.forced()
            if entry:
                self._consume(matcher, entry, 0, None)
                for t in entry:
                    offsets.append(len(state_bytes))
                    state_bytes += rt.table.decode([t])
                self.seq.append(entry)
                yield from self._emit_tokens(entry, forced_flag=True)
                if isinstance(state, GrammarState) and self._closed(state, state_bytes, matcher):
                    yield from self.enter(state.next, state.close)  # forced whole, close included
                    return
        steps = 0
        while True:
            self._check_budgets(steps, state.max_tokens)
            logits = yield from self._logits(matcher, steps)
            for processor in rt.logits_processors:
                processor(self.state, bytes(state_bytes).decode("utf-8", "replace"), logits)
            token = sample(logits, state.sampling or self.sampling, self.generator)
            steps += 1
            self.stats.generated_tokens += 1
            if token in rt.lm.eos_ids:
                yield from self._on_eos(state, token, state_bytes)
                return
            forced: list[int] = []
            if matcher is not None:
                self._consume(matcher, [token], steps, token)
                forced = matcher.forced()
                if forced:
                    self._consume(matcher, forced, steps, token)
            chunk = [token, *forced]
            new_bytes = 0
            for t in chunk:
                offsets.append(len(state_bytes))
                data = rt.table.decode([t])
                state_bytes += data
                new_bytes += len(data)
            if isinstance(state, GrammarState):
                self.seq.append([token], chosen=True)
                self.seq.append(forced)
                yield from self._emit_tokens([token], forced_flag=False)
                if forced:
                    yield from self._emit_tokens(forced, forced_flag=True)
                if self._closed(state, state_bytes, matcher):
                    yield from self.enter(state.next, state.close)
                    return
                continue
            hit = trig.find(state_bytes, [t.trigger for t in state.triggers], new_bytes)
            if hit is None or (matcher is not None and not hit.complete):
                self.seq.append([token], chosen=True)
                self.seq.append(forced)
                yield from self._emit_tokens(chunk, forced_flag=False)
                continue
            yield from self._fire(state, hit, chunk, state_bytes, offsets, seg_start)
            return

    def _closed(self, state: GrammarState, state_bytes: bytearray, matcher: Any) -> bool:
        """The state's text ends with its close and the grammar accepts: capture the text."""
        close = state.close.encode()
        if not state_bytes.endswith(close) or matcher is None or not matcher.is_accepting():
            return False
        self.captures[state.name] = bytes(state_bytes[: -len(close)]).decode("utf-8", "replace")
        return True

    def _logits(self, matcher: Any, steps: int) -> Generator[Event | Request, Reply, Any]:
        """Ask for this row's next-token logits (masked by `matcher`); returns a copy."""
        request = Step(self.seq.row, matcher)
        reply = yield request
        if reply is None:  # driven by hand: step this row alone
            reply = step_rows(self.seq.engine, self.rt.masks, self.rt.mask_worker, [request])[0]
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

    def _fire(
        self,
        state: TextState,
        hit: trig.Hit,
        chunk: list[int],
        state_bytes: bytearray,
        offsets: list[int],
        seg_start: int,
    ) -> Steps:
        """The model emitted (the start of) a trigger: complete it, heal, switch state."""
        data = self.rt.table.decode(chunk)
        chunk_start = len(state_bytes) - len(data)
        shown = bytes(state_bytes[chunk_start : hit.start + hit.matched])
        yield from self._emit_bytes(shown, tuple(chunk), forced_flag=False)
        rest = hit.trigger[hit.matched :]
        if rest:
            self.add_text("forced", rest.decode("utf-8", "replace"))
            yield TokenEvent(self.state, rest.decode("utf-8", "replace"), (), forced=True)
        k = trig.token_at(offsets, hit.start)
        head = bytes(state_bytes[offsets[k] : hit.start]) + hit.trigger
        self.seq.append(chunk[:1], chosen=True)
        self.seq.append(chunk[1:])
        self.seq.truncate(seg_start + k)
        self.seq.append(encode(self.rt.lm.tokenizer, head.decode("utf-8", "replace")))
        self.captures[state.name] = bytes(state_bytes[: hit.start]).decode("utf-8", "replace")
        target = next(t.target for t in state.triggers if t.trigger.encode() == hit.trigger)
        yield from self.enter(target, hit.trigger.decode())

    def _on_eos(self, state: TextState | GrammarState, token: int, state_bytes: bytearray) -> Steps:
        self.seq.append([token], chosen=True)
        self.captures[state.name] = bytes(state_bytes).decode("utf-8", "replace")
        if isinstance(state, TextState) and state.on_eos:
            yield from self.enter(state.on_eos, "eos")
            return
        raise Stop("eos", f"the model ended its turn in state {state.name!r}")

    def _consume(self, matcher: Any, tokens: list[int], step: int, token: int | None) -> None:
        if not matcher.consume(tokens):
            raise DecodeError(
                f"the grammar rejected a token: {matcher.error}", self.state, step, token
            )

    def _emit_tokens(self, tokens: list[int], forced_flag: bool) -> Steps:
        yield from self._emit_bytes(self.rt.table.decode(tokens), tuple(tokens), forced_flag)

    def _emit_bytes(self, data: bytes, ids: tuple[int, ...], forced_flag: bool) -> Steps:
        text = self._stream_text(data)
        if text:
            self.add_text("forced" if forced_flag else "model", text)
            yield TokenEvent(self.state, text, ids, forced=forced_flag)
