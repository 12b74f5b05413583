"""What one token does to a text or grammar state: budgets, matcher, triggers, close, healing.

Both decode loops feed tokens through here: the token-level loop one sampled
token at a time, the segment loop (segments.py) each token of a segment the
engine generated. So triggers split across tokens, forced text, captures,
events and stop reasons are the same on every engine.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from llmos_grammar.errors import DecodeError
from llmos_grammar.ir import GrammarState, TextState
from llmos_grammar.runtime import triggers as trig
from llmos_grammar.runtime.action_step import ActionStep
from llmos_grammar.runtime.events import Event, Stop, TokenEvent
from llmos_grammar.runtime.pieces import Piece
from llmos_grammar.runtime.prompt import encode
from llmos_grammar.runtime.requests import Reply, Request
from llmos_grammar.runtime.row import Steps

Ends = Generator[Event | Request, Reply, bool]  # True when the state ended


@dataclass
class Visit:
    """One visit of a text or grammar state: its matcher, bytes and token offsets."""

    state: TextState | GrammarState
    matcher: Any
    seg_start: int
    state_bytes: bytearray = field(default_factory=bytearray)
    offsets: list[int] = field(default_factory=list)  # start of each token in state_bytes
    steps: int = 0  # tokens the model chose in this visit


class TokenReplay(ActionStep):
    """Per-token moves of text and grammar states, shared by the decode loops."""

    def new_visit(self, state: TextState | GrammarState, matcher: Any) -> Visit:
        return Visit(state, matcher, len(self.seq.ids))

    def replay_entry(self, visit: Visit, entry: list[int]) -> Ends:
        """Tokens the grammar forces before the model chooses any: fed as forced.

        True when they are the whole state, close included (the state moves on).
        """
        self._consume(visit.matcher, entry, 0, None)
        for t in entry:
            visit.offsets.append(len(visit.state_bytes))
            visit.state_bytes += self.rt.table.decode([t])
        self.seq.append(entry)
        yield from self._emit_tokens(entry, forced_flag=True)
        state = visit.state
        if isinstance(state, GrammarState) and self._closed(state, visit):
            yield from self.enter(state.next, state.close)  # forced whole, close included
            return True
        return False

    def _closed(self, state: GrammarState, visit: Visit) -> bool:
        """The state's text ends with its close and the grammar accepts: capture the text."""
        close, text, matcher = state.close.encode(), visit.state_bytes, visit.matcher
        if not text.endswith(close) or matcher is None or not matcher.is_accepting():
            return False
        self.captures[state.name] = bytes(text[: -len(close)]).decode("utf-8", "replace")
        return True

    def replay_token(
        self, visit: Visit, token: int, take_forced: Callable[[list[int]], list[int]]
    ) -> Ends:
        """Apply the model's `token`; True when the state ended (a transition or a stop).

        `take_forced` gets the ids the grammar forces after the token and returns
        those to feed as forced (all of them, or none when the engine already
        produced other ids for that text).
        """
        state, matcher = visit.state, visit.matcher
        visit.steps += 1
        self.stats.generated_tokens += 1
        if token in self.rt.lm.eos_ids:
            yield from self._on_eos(state, token, visit.state_bytes)
            return True
        forced: list[int] = []
        if matcher is not None:
            self._consume(matcher, [token], visit.steps, token)
            wanted = matcher.forced()
            forced = take_forced(wanted) if wanted else []
            if forced:
                self._consume(matcher, forced, visit.steps, token)
        chunk = [token, *forced]
        new_bytes = 0
        for t in chunk:
            visit.offsets.append(len(visit.state_bytes))
            data = self.rt.table.decode([t])
            visit.state_bytes += data
            new_bytes += len(data)
        if isinstance(state, GrammarState):
            self.seq.append([token], chosen=True)
            self.seq.append(forced)
            yield from self._emit_tokens([token], forced_flag=False)
            if forced:
                yield from self._emit_tokens(forced, forced_flag=True)
            if self._closed(state, visit):
                yield from self.enter(state.next, state.close)
                return True
            return False
        hit = trig.find(visit.state_bytes, [t.trigger for t in state.triggers], new_bytes)
        if hit is None or (matcher is not None and not hit.complete):
            self.seq.append([token], chosen=True)
            self.seq.append(forced)
            yield from self._emit_tokens(chunk, forced_flag=False)
            return False
        yield from self._fire(state, hit, chunk, visit)
        return True

    def _fire(self, state: TextState, hit: trig.Hit, chunk: list[int], visit: Visit) -> Steps:
        """The model emitted (the start of) a trigger: complete it, heal, switch state."""
        state_bytes, offsets = visit.state_bytes, visit.offsets
        data = self.rt.table.decode(chunk)
        chunk_start = len(state_bytes) - len(data)
        shown = bytes(state_bytes[chunk_start : hit.start + hit.matched])
        yield from self._emit_bytes(shown, tuple(chunk), forced_flag=False)
        rest = hit.trigger[hit.matched :]
        if rest:
            self.add_text("forced", rest.decode("utf-8", "replace"))
            yield TokenEvent(self.state, rest.decode("utf-8", "replace"), (), forced=True)
        k = trig.token_at(offsets, hit.start)
        head = bytes(state_bytes[offsets[k] : hit.start]).decode("utf-8", "replace")
        self.seq.append(chunk[:1], chosen=True)
        self.seq.append(chunk[1:])
        self.seq.truncate(visit.seg_start + k)
        # the model's text is re-encoded as plain text; the spec's trigger may be special
        trigger = Piece(hit.trigger.decode("utf-8", "replace"), trusted=True)
        self.seq.append(encode(self.rt.lm.tokenizer, (Piece(head), trigger)))
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
