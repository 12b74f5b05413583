"""One run of a machine: the decode loop with constraints, triggers, forced text and actions."""

from __future__ import annotations

import codecs
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmos_grammar.constraints.backend import MatcherError
from llmos_grammar.errors import DecodeError
from llmos_grammar.ir import ActionState, FinalState, GrammarState, TextState
from llmos_grammar.runtime import triggers as trig
from llmos_grammar.runtime.action_step import run_action
from llmos_grammar.runtime.events import (
    ActionRecord,
    DoneEvent,
    Event,
    Result,
    Segment,
    Stats,
    Stop,
    StopReason,
    TokenEvent,
    TransitionEvent,
)
from llmos_grammar.runtime.kv import KVSequence, heal_append
from llmos_grammar.runtime.prompt import encode, prompt_text
from llmos_grammar.runtime.sampling import make_generator, sample

if TYPE_CHECKING:
    from llmos_grammar.runtime.engine import Runtime


class Run:
    """The mutable state of one run; `events()` drives it."""

    def __init__(self, rt: Runtime, task: str) -> None:
        self.rt = rt
        self.task = task
        self.seq = KVSequence(rt.lm)
        self.state = rt.machine.start
        self.captures: dict[str, str] = {}
        self.segments: list[Segment] = []
        self.actions: list[ActionRecord] = []
        self.stats = Stats()
        self.generator = make_generator(rt.sampling)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.t0 = time.perf_counter()
        self.first_token_at: float | None = None

    # ---- text bookkeeping -------------------------------------------------
    def add_text(self, source: Any, text: str) -> None:
        last = self.segments[-1] if self.segments else None
        if last and last.state == self.state and last.source == source:
            self.segments[-1] = Segment(self.state, source, last.text + text)
        elif text:
            self.segments.append(Segment(self.state, source, text))

    def _stream_text(self, data: bytes) -> str:
        return self.decoder.decode(data)

    # ---- forced and injected text ------------------------------------------
    def queue_text(self, text: str) -> int:
        """Append `text` (fed at the next flush), healing the token boundary before it."""
        return heal_append(self.seq, self.rt.table, self.rt.lm.tokenizer, text)

    # ---- the run ------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        machine = self.rt.machine
        prompt = prompt_text(machine.prompt, self.rt.lm.tokenizer, self.task)
        self.seq.append(encode(self.rt.lm.tokenizer, prompt))
        self.stats.prompt_tokens = len(self.seq.ids)
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
        self._finish_stats()
        text = "".join(s.text for s in self.segments if s.source != "prompt")
        result = Result(
            text=text,
            final_state=self.state,
            stop_reason=reason,
            message=message,
            transcript=tuple(self.segments),
            actions=tuple(self.actions),
            stats=self.stats,
        )
        yield DoneEvent(result)

    def _finish_stats(self) -> None:
        now = time.perf_counter()
        self.stats.total_s = now - self.t0
        self.stats.forward_passes = self.seq.forward_passes
        self.stats.forced_tokens = self.seq.forward_tokens - self.stats.prompt_tokens
        self.stats.forced_tokens -= self.stats.generated_tokens
        self.stats.forced_tokens = max(0, self.stats.forced_tokens)
        start = self.first_token_at if self.first_token_at is not None else now
        self.stats.time_to_first_token_s = start - self.t0
        self.stats.decode_s = max(0.0, now - start - self.stats.action_s)

    def enter(self, target: str, trigger: str, announce: bool = True) -> Iterator[Event]:
        if announce:
            yield TransitionEvent(self.state, target, trigger)
        self.state = target
        state = self.rt.machine.states[target]
        if isinstance(state, GrammarState) and state.open:
            self.queue_text(state.open)
            self.add_text("forced", state.open)
            yield TokenEvent(target, state.open, (), forced=True)

    # ---- budgets --------------------------------------------------------------
    def _check_budgets(self, state_tokens: int, state_max: int | None) -> None:
        budgets = self.rt.budgets
        if time.perf_counter() - self.t0 > budgets.wall_s:
            raise Stop("wall_s", f"wall-clock budget exhausted: {budgets.wall_s:g} s")
        if self.stats.generated_tokens >= budgets.max_tokens:
            raise Stop("max_tokens", f"token budget exhausted: {budgets.max_tokens} tokens")
        if state_max is not None and state_tokens >= state_max:
            raise Stop(
                "state_max_tokens",
                f"state {self.state!r} used its {state_max} tokens without finishing",
            )

    # ---- text and grammar states ---------------------------------------------
    def _decode(self, state: TextState | GrammarState) -> Iterator[Event]:
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
        steps = 0
        while True:
            self._check_budgets(steps, state.max_tokens)
            # the next mask depends only on tokens already consumed: compute it
            # on a worker thread while the model runs its forward pass
            pending = rt.mask_worker.submit(rt.mask.allowed, matcher) if matcher else None
            logits = self.seq.flush()
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            logits = logits.clone()
            if pending is not None:
                try:
                    allowed = pending.result()
                except MatcherError as exc:
                    last = self.seq.ids[-1] if self.seq.ids else None
                    raise DecodeError(f"matcher error: {exc}", self.state, steps, last) from exc
                if allowed.numel() == 0:
                    raise DecodeError("no token is allowed by the grammar", self.state, steps, None)
                logits = rt.mask.apply(logits, allowed)
            for processor in rt.logits_processors:
                processor(self.state, bytes(state_bytes).decode("utf-8", "replace"), logits)
            token = sample(logits, state.sampling or rt.sampling, self.generator)
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
                self.seq.append(chunk)
                yield from self._emit_tokens([token], forced_flag=False)
                if forced:
                    yield from self._emit_tokens(forced, forced_flag=True)
                close = state.close.encode()
                if state_bytes.endswith(close) and matcher is not None and matcher.is_accepting():
                    self.captures[state.name] = bytes(state_bytes[: -len(close)]).decode(
                        "utf-8", "replace"
                    )
                    yield from self.enter(state.next, state.close)
                    return
                continue
            hit = trig.find(state_bytes, [t.trigger for t in state.triggers], new_bytes)
            if hit is None or (matcher is not None and not hit.complete):
                self.seq.append(chunk)
                yield from self._emit_tokens(chunk, forced_flag=False)
                continue
            yield from self._fire(state, hit, chunk, state_bytes, offsets, seg_start)
            return

    def _fire(
        self,
        state: TextState,
        hit: trig.Hit,
        chunk: list[int],
        state_bytes: bytearray,
        offsets: list[int],
        seg_start: int,
    ) -> Iterator[Event]:
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
        self.seq.append(chunk)
        self.seq.truncate(seg_start + k)
        self.seq.append(encode(self.rt.lm.tokenizer, head.decode("utf-8", "replace")))
        self.captures[state.name] = bytes(state_bytes[: hit.start]).decode("utf-8", "replace")
        target = next(t.target for t in state.triggers if t.trigger.encode() == hit.trigger)
        yield from self.enter(target, hit.trigger.decode())

    def _on_eos(
        self, state: TextState | GrammarState, token: int, state_bytes: bytearray
    ) -> Iterator[Event]:
        self.seq.append([token])
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

    def _emit_tokens(self, tokens: list[int], forced_flag: bool) -> Iterator[Event]:
        yield from self._emit_bytes(self.rt.table.decode(tokens), tuple(tokens), forced_flag)

    def _emit_bytes(self, data: bytes, ids: tuple[int, ...], forced_flag: bool) -> Iterator[Event]:
        text = self._stream_text(data)
        if text:
            self.add_text("forced" if forced_flag else "model", text)
            yield TokenEvent(self.state, text, ids, forced=forced_flag)

    # ---- action states ----------------------------------------------------------
    def _action(self, state: ActionState) -> Iterator[Event]:
        yield from run_action(self, state)
