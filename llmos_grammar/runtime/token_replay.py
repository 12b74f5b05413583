"""What one token does to a text or grammar state: matcher, triggers, close, end of turn, healing.

Both decodes feed tokens through here: the token-level decode one sampled
token at a time, the segment decode each token of a segment the engine
generated. So triggers split across tokens, forced text, captures, events and
stop reasons are the same on every engine.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from llmos_grammar.constraints import Matcher, TokenTable
from llmos_grammar.errors import DecodeError
from llmos_grammar.ir import GrammarState, TextState
from llmos_grammar.libtypes.hf import Tokenizer
from llmos_grammar.runtime import triggers as trig
from llmos_grammar.runtime.events import Event, HealedEvent, Stop, TokenEvent
from llmos_grammar.runtime.moves import Moves
from llmos_grammar.runtime.pieces import Piece
from llmos_grammar.runtime.prompt import encode
from llmos_grammar.runtime.requests import Reply, Request
from llmos_grammar.runtime.row import Row, Steps

Ends = Generator[Event | Request, Reply, bool]  # True when the state ended
# the ids the grammar forces after a token -> those to feed as forced (all, or none when
# the engine already produced other ids for that text)
TakeForced = Callable[[list[int]], list[int]]


@dataclass
class Visit:
    """One visit of a text or grammar state: its matcher, bytes and token offsets."""

    state: TextState | GrammarState
    matcher: Matcher | None
    start: int  # the row's length when the visit began
    state_bytes: bytearray = field(default_factory=bytearray)
    offsets: list[int] = field(default_factory=list)  # start of each token in state_bytes
    steps: int = 0  # tokens the model chose in this visit


class TokenReplay:
    """Applies tokens to a row's visit of a text or grammar state."""

    def __init__(
        self, moves: Moves, table: TokenTable, tokenizer: Tokenizer, eos_ids: frozenset[int]
    ) -> None:
        self.moves = moves
        self.table = table
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids

    def visit(self, row: Row, state: TextState | GrammarState, matcher: Matcher | None) -> Visit:
        return Visit(state, matcher, len(row.seq.ids))

    def entry(self, row: Row, visit: Visit, tokens: list[int]) -> Ends:
        """Tokens the grammar forces before the model chooses any: fed as forced.

        True when they are the whole state, close included (the state moves on).
        """
        self._consume(row, visit.matcher, tokens, 0, None)
        for t in tokens:
            visit.offsets.append(len(visit.state_bytes))
            visit.state_bytes += self.table.decode([t])
        row.seq.append(tokens)
        yield from self.moves.emit_tokens(row, tokens, forced=True)
        state = visit.state
        if isinstance(state, GrammarState) and self._closed(row, state, visit):
            yield from self.moves.enter(row, state.next, state.close)  # forced whole
            return True
        return False

    def token(self, row: Row, visit: Visit, token: int, take_forced: TakeForced) -> Ends:
        """Apply the model's `token`; True when the state ended (a transition or a stop)."""
        state, matcher = visit.state, visit.matcher
        visit.steps += 1
        row.stats.generated_tokens += 1
        if token in self.eos_ids:
            yield from self._on_eos(row, state, token, visit.state_bytes)
            return True
        forced: list[int] = []
        if matcher is not None:
            self._consume(row, matcher, [token], visit.steps, token)
            wanted = matcher.forced()
            forced = take_forced(wanted) if wanted else []
            if forced:
                self._consume(row, matcher, forced, visit.steps, token)
        chunk = [token, *forced]
        new_bytes = 0
        for t in chunk:
            visit.offsets.append(len(visit.state_bytes))
            data = self.table.decode([t])
            visit.state_bytes += data
            new_bytes += len(data)
        if isinstance(state, GrammarState):
            row.seq.append([token], chosen=True)
            row.seq.append(forced)
            yield from self.moves.emit_tokens(row, [token], forced=False)
            if forced:
                yield from self.moves.emit_tokens(row, forced, forced=True)
            if self._closed(row, state, visit):
                yield from self.moves.enter(row, state.next, state.close)
                return True
            return False
        hit = trig.find(visit.state_bytes, [t.trigger for t in state.triggers], new_bytes)
        if hit is None or (matcher is not None and not hit.complete):
            row.seq.append([token], chosen=True)
            row.seq.append(forced)
            yield from self.moves.emit_tokens(row, chunk, forced=False)
            return False
        yield from self._fire(row, state, hit, chunk, visit)
        return True

    def _closed(self, row: Row, state: GrammarState, visit: Visit) -> bool:
        """The state's text ends with its close and the grammar accepts: capture the text."""
        close, text, matcher = state.close.encode(), visit.state_bytes, visit.matcher
        if not text.endswith(close) or matcher is None or not matcher.is_accepting():
            return False
        row.captures[state.name] = bytes(text[: -len(close)]).decode("utf-8", "replace")
        return True

    def _fire(
        self, row: Row, state: TextState, hit: trig.Hit, chunk: list[int], visit: Visit
    ) -> Steps:
        """The model emitted (the start of) a trigger: complete it, heal, switch state."""
        state_bytes, offsets = visit.state_bytes, visit.offsets
        data = self.table.decode(chunk)
        chunk_start = len(state_bytes) - len(data)
        shown = bytes(state_bytes[chunk_start : hit.start + hit.matched])
        yield from self.moves.emit_bytes(row, shown, tuple(chunk), forced=False)
        rest = hit.trigger[hit.matched :]
        if rest:
            row.add_text("forced", rest.decode("utf-8", "replace"))
            yield TokenEvent(row.state, rest.decode("utf-8", "replace"), (), forced=True)
        k = trig.token_at(offsets, hit.start)
        head = bytes(state_bytes[offsets[k] : hit.start]).decode("utf-8", "replace")
        row.seq.append(chunk[:1], chosen=True)
        row.seq.append(chunk[1:])
        dropped = tuple(row.seq.ids[visit.start + k :])
        row.seq.truncate(visit.start + k)
        # the model's text is re-encoded as plain text; the spec's trigger may be special
        trigger = Piece(hit.trigger.decode("utf-8", "replace"), trusted=True)
        healed = encode(self.tokenizer, (Piece(head), trigger))
        row.seq.append(healed)
        if self.moves.details and tuple(healed) != dropped:
            yield HealedEvent(row.state, head + trigger.text, dropped, tuple(healed))
        row.captures[state.name] = bytes(state_bytes[: hit.start]).decode("utf-8", "replace")
        target = next(t.target for t in state.triggers if t.trigger.encode() == hit.trigger)
        yield from self.moves.enter(row, target, hit.trigger.decode())

    def _on_eos(
        self, row: Row, state: TextState | GrammarState, token: int, state_bytes: bytearray
    ) -> Steps:
        row.seq.append([token], chosen=True)
        row.captures[state.name] = bytes(state_bytes).decode("utf-8", "replace")
        if isinstance(state, TextState) and state.on_eos:
            yield from self.moves.enter(row, state.on_eos, "eos")
            return
        raise Stop("eos", f"the model ended its turn in state {state.name!r}")

    def _consume(
        self, row: Row, matcher: Matcher | None, tokens: list[int], step: int, token: int | None
    ) -> None:
        if matcher is not None and not matcher.consume(tokens):
            raise DecodeError(
                f"the grammar rejected a token: {matcher.error}", row.state, step, token
            )
