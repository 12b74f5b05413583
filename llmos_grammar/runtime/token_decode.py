"""Text and grammar states on an engine that gives logits: ask for a step, mask, sample, replay."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING

from llmos_grammar.constraints import Compiled, Matcher, MatcherError, apply_mask
from llmos_grammar.errors import DecodeError
from llmos_grammar.ir import GrammarState, TextState
from llmos_grammar.runtime.events import Event
from llmos_grammar.runtime.requests import Reply, Request, Step, StepReply
from llmos_grammar.runtime.row import Row, Steps
from llmos_grammar.runtime.sampling import sample
from llmos_grammar.runtime.step_detail import step_detail
from llmos_grammar.runtime.token_replay import TokenReplay

if TYPE_CHECKING:
    from torch import Tensor

# (state, the state's text so far, its logits row) -> None: edits the row in place
LogitsProcessor = Callable[[str, str, "Tensor"], None]


class TokenDecode:
    """One token at a time: the driver steps the row (with others) and sends its logits back."""

    def __init__(
        self,
        replay: TokenReplay,
        constraints: Mapping[str, Compiled],
        logits_processors: Sequence[LogitsProcessor] = (),
        details: bool = False,
    ) -> None:
        self.replay = replay
        self.constraints = constraints
        self.logits_processors = logits_processors
        self.details = details  # record each sampled token's StepDetail

    def decode(self, row: Row, state: TextState | GrammarState) -> Steps:
        """Sample tokens until the state ends (a transition) or the run stops."""
        compiled = self.constraints.get(state.name)
        matcher = compiled.new() if compiled is not None else None
        visit = self.replay.visit(row, state, matcher)
        if matcher is not None:
            entry = matcher.forced()
            if entry and (yield from self.replay.entry(row, visit, entry)):
                return
        while True:
            self.replay.moves.check_budgets(row, visit.steps, state.max_tokens)
            started = time.perf_counter()
            logits = yield from self._logits(row, matcher, visit.steps)
            if self.logits_processors:
                text = bytes(visit.state_bytes).decode("utf-8", "replace")
                for processor in self.logits_processors:
                    processor(row.state, text, logits)
            sampling = state.sampling or row.sampling
            token = sample(logits, sampling, row.generator)
            if self.details:  # shown with the token's event (Moves.emit_bytes)
                masked = matcher is not None
                table = self.replay.table
                row.detail = step_detail(
                    logits, token, sampling.temperature, masked, started, table
                )
            if (yield from self.replay.token(row, visit, token, _all)):
                return

    def _logits(
        self, row: Row, matcher: Matcher | None, steps: int
    ) -> Generator[Event | Request, Reply, Tensor]:
        """Ask for this row's next-token logits (masked by `matcher`); returns a copy."""
        reply = yield Step(row.seq.row, matcher)
        if not isinstance(reply, StepReply):
            raise TypeError(f"a step was answered with {type(reply).__name__}")
        if row.first_token_at is None:
            row.first_token_at = time.perf_counter()
        logits = reply.logits.clone()
        if matcher is None:
            return logits
        if isinstance(reply.allowed, MatcherError):
            last = row.seq.ids[-1] if row.seq.ids else None
            raise DecodeError(f"matcher error: {reply.allowed}", row.state, steps, last)
        if reply.allowed is None or not bool(reply.allowed.any()):
            raise DecodeError("no token is allowed by the grammar", row.state, steps, None)
        return apply_mask(logits, reply.allowed)


def _all(forced: list[int]) -> list[int]:
    return forced
