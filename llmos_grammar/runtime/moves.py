"""Moves every part of a run makes on a row: queue text, enter a state, check budgets, show text."""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence

from llmos_grammar.constraints import TokenTable
from llmos_grammar.ir import Budgets, GrammarState, Machine
from llmos_grammar.libtypes.hf import Tokenizer
from llmos_grammar.runtime.events import Event, HealedEvent, Stop, TokenEvent, TransitionEvent
from llmos_grammar.runtime.kv import heal_append
from llmos_grammar.runtime.pieces import Piece, trusted
from llmos_grammar.runtime.requests import Reply, Request
from llmos_grammar.runtime.row import Row, Steps


class Moves:
    """Shared moves over the rows of one machine, model and set of budgets; `details`:
    the run records details (a HealedEvent where token healing changed the context)."""

    def __init__(
        self,
        machine: Machine,
        table: TokenTable,
        tokenizer: Tokenizer,
        budgets: Budgets,
        details: bool = False,
    ) -> None:
        self.machine = machine
        self.table = table
        self.tokenizer = tokenizer
        self.budgets = budgets
        self.details = details

    # ---- text ----------------------------------------------------------------------
    def queue_text(self, row: Row, pieces: Sequence[Piece]) -> int:
        """Append `pieces` (fed at the next step), healing the token boundary before them;
        only trusted pieces may make special tokens. Returns how many ids were queued."""
        return heal_append(row.seq, self.table, self.tokenizer, pieces)

    def queue(self, row: Row, pieces: Sequence[Piece]) -> Generator[Event | Request, Reply, int]:
        """`queue_text`; with details, a HealedEvent when it re-tokenized the last id."""
        ids = row.seq.ids
        before, last = len(ids), (ids[-1] if ids else None)
        n = self.queue_text(row, pieces)
        after = row.seq.ids
        if self.details and last is not None and len(after) - n < before:
            head = self.table.decode([last]).decode("utf-8", "replace")
            yield HealedEvent(row.state, head, (last,), tuple(after[len(after) - n :]))
        return n

    def force(self, row: Row, text: str) -> Steps:
        """Queue the spec's `text` as forced text, with its event."""
        yield from self.queue(row, trusted(text))
        row.add_text("forced", text)
        yield TokenEvent(row.state, text, (), forced=True)

    def emit_tokens(self, row: Row, tokens: list[int], forced: bool) -> Steps:
        """Show `tokens` (already in the row's ids) as model or forced text."""
        yield from self.emit_bytes(row, self.table.decode(tokens), tuple(tokens), forced)

    def emit_bytes(self, row: Row, data: bytes, ids: tuple[int, ...], forced: bool) -> Steps:
        text = row.stream_text(data)
        if text:
            row.add_text("forced" if forced else "model", text)
            detail = None
            if not forced:  # a sampled token's step (runs that record details)
                detail, row.detail = row.detail, None
            yield TokenEvent(row.state, text, ids, forced=forced, detail=detail)

    # ---- states and budgets ------------------------------------------------------------
    def enter(self, row: Row, target: str, trigger: str, announce: bool = True) -> Steps:
        """Move the row to `target`; a grammar state's `open` text is forced on entry."""
        if announce:
            yield TransitionEvent(row.state, target, trigger)
        row.state = target
        state = self.machine.states[target]
        if isinstance(state, GrammarState) and state.open:
            yield from self.force(row, state.open)

    def check_wall(self, row: Row) -> None:
        wall = self.budgets.wall_s
        if time.perf_counter() - row.t0 > wall:
            raise Stop("wall_s", f"wall-clock budget exhausted: {wall:g} s")

    def check_budgets(self, row: Row, state_tokens: int, state_max: int | None) -> None:
        """Stop the run when the wall clock, the run's tokens or the state's tokens are spent."""
        self.check_wall(row)
        if row.stats.generated_tokens >= self.budgets.max_tokens:
            raise Stop("max_tokens", f"token budget exhausted: {self.budgets.max_tokens} tokens")
        if state_max is not None and state_tokens >= state_max:
            raise Stop(
                "state_max_tokens",
                f"state {row.state!r} used its {state_max} tokens without finishing",
            )
