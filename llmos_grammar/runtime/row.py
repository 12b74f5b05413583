"""The state of one run (one row of a batch): its sequence, texts, captures, stats, budgets."""

from __future__ import annotations

import codecs
import time
from collections.abc import Generator, Sequence
from typing import Any

from llmos_grammar.engines import AnyEngine
from llmos_grammar.ir import GrammarState, Sampling
from llmos_grammar.runtime.events import (
    ActionRecord,
    Event,
    Span,
    Stats,
    Stop,
    TokenEvent,
    TransitionEvent,
)
from llmos_grammar.runtime.host import RunHost
from llmos_grammar.runtime.kv import KVSequence, heal_append
from llmos_grammar.runtime.pieces import Piece, Pieces, trusted
from llmos_grammar.runtime.requests import Reply, Request
from llmos_grammar.runtime.sampling import make_generator

# A run yields events and requests; its driver sends replies back (see requests.py).
Steps = Generator[Event | Request, Reply, None]


class RowState:
    """Everything one run owns; `Run` adds the decode loop on top."""

    def __init__(
        self,
        rt: RunHost,
        task: str,
        *,
        engine: AnyEngine | None = None,
        sampling: Sampling | None = None,
        key: tuple[int, int] = (0, 0),
        seq: KVSequence | None = None,
        turn: Pieces | None = None,
    ) -> None:
        self.rt = rt
        self.task = task
        if seq is None:
            seq = KVSequence(rt.lm, engine if engine is not None else rt.new_engine())
        self.seq = seq
        # A run that continues a sequence (a session's next turn) appends `turn`
        # instead of the whole prompt; its stats count from where the row stood.
        self.turn = turn
        self.passes0 = seq.forward_passes
        self.fed0 = seq.forward_tokens
        self.state = rt.machine.start
        self.captures: dict[str, str] = {}
        self.segments: list[Span] = []
        self.actions: list[ActionRecord] = []
        self.stats = Stats()
        self.sampling = sampling or rt.sampling
        self.generator = make_generator(self.sampling, key)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.t0 = time.perf_counter()
        self.first_token_at: float | None = None
        # decoding starts here: the first token's step, or the first segment's request
        self.decode_from: float | None = None

    # ---- text bookkeeping -------------------------------------------------
    def add_text(self, source: Any, text: str) -> None:
        last = self.segments[-1] if self.segments else None
        if last and last.state == self.state and last.source == source:
            self.segments[-1] = Span(self.state, source, last.text + text)
        elif text:
            self.segments.append(Span(self.state, source, text))

    def _stream_text(self, data: bytes) -> str:
        return self.decoder.decode(data)

    def queue_text(self, text: Sequence[Piece]) -> int:
        """Append `text` (fed at the next step), healing the token boundary before it;
        only its trusted pieces may make special tokens."""
        return heal_append(self.seq, self.rt.table, self.rt.lm.tokenizer, text)

    # ---- moves and budgets ----------------------------------------------------
    def enter(self, target: str, trigger: str, announce: bool = True) -> Steps:
        if announce:
            yield TransitionEvent(self.state, target, trigger)
        self.state = target
        state = self.rt.machine.states[target]
        if isinstance(state, GrammarState) and state.open:
            self.queue_text(trusted(state.open))
            self.add_text("forced", state.open)
            yield TokenEvent(target, state.open, (), forced=True)

    def _check_wall(self) -> None:
        wall = self.rt.budgets.wall_s
        if time.perf_counter() - self.t0 > wall:
            raise Stop("wall_s", f"wall-clock budget exhausted: {wall:g} s")

    def _check_budgets(self, state_tokens: int, state_max: int | None) -> None:
        budgets = self.rt.budgets
        self._check_wall()
        if self.stats.generated_tokens >= budgets.max_tokens:
            raise Stop("max_tokens", f"token budget exhausted: {budgets.max_tokens} tokens")
        if state_max is not None and state_tokens >= state_max:
            raise Stop(
                "state_max_tokens",
                f"state {self.state!r} used its {state_max} tokens without finishing",
            )
