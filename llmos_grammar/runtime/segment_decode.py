"""Text and grammar states on an engine that gives segments (vLLM): one request, then replay.

A segment request continues the row's ids until a stop string (the state's
triggers and their started prefixes), the end of the state's grammar (its
close delimiter, as structured outputs), end of sequence or the budget. Its
tokens are then replayed one by one through the same checks as the
token-level decode: budgets, trigger detection (split across tokens included),
grammar matcher, close delimiter, healing. Tokens after the point where the
state ends are dropped; the next request continues from the healed ids, and
the server's prefix cache makes the shared prefix free.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator, Mapping

from llmos_grammar.constraints import Compiled
from llmos_grammar.engines import SegmentOutput, SegmentParams
from llmos_grammar.errors import DecodeError
from llmos_grammar.ir import Budgets, GrammarState, TextState
from llmos_grammar.runtime import triggers as trig
from llmos_grammar.runtime.events import Event
from llmos_grammar.runtime.requests import Generate, Reply, Request
from llmos_grammar.runtime.row import Row, Steps
from llmos_grammar.runtime.token_replay import TokenReplay, Visit

CONSTRAINED_SLACK = 16  # extra tokens a constrained segment may take for grammar-forced text


class SegmentDecode:
    """A segment at a time: the driver sends the row's request to the engine and its output
    back; the output's tokens are replayed as if sampled one by one."""

    def __init__(
        self,
        replay: TokenReplay,
        constraints: Mapping[str, Compiled],
        budgets: Budgets,
        eos_ids: frozenset[int],
    ) -> None:
        self.replay = replay
        self.constraints = constraints
        self.budgets = budgets
        self.stop_ids = tuple(sorted(eos_ids))

    def decode(self, row: Row, state: TextState | GrammarState) -> Steps:
        """Ask for segments and replay their tokens until the state ends or the run stops."""
        compiled = self.constraints.get(state.name)
        matcher = compiled.new() if compiled is not None else None
        visit = self.replay.visit(row, state, matcher)
        entry = matcher.forced() if matcher is not None else []
        pending: deque[int] = deque()
        requests = 0
        while True:
            self.replay.moves.check_budgets(row, visit.steps, state.max_tokens)
            if not pending:
                if matcher is not None and requests:
                    message = "the engine ended a constrained segment before its grammar did"
                    raise DecodeError(message, row.state, visit.steps, None)
                out = yield from self._segment(row, state, visit, matcher is not None)
                requests += 1
                pending.extend(out.tokens)
                if not pending:
                    message = "the engine returned an empty segment"
                    raise DecodeError(message, row.state, visit.steps, None)
                if entry and list(pending)[: len(entry)] == entry:
                    for _ in entry:
                        pending.popleft()
                    if (yield from self.replay.entry(row, visit, entry)):
                        return
                entry = []
            token = pending.popleft()

            def take(forced: list[int]) -> list[int]:
                """Grammar-forced ids count as forced when the server produced them too."""
                if list(pending)[: len(forced)] != forced:
                    return []
                for _ in forced:
                    pending.popleft()
                return forced

            if (yield from self.replay.token(row, visit, token, take)):
                return

    def _segment(
        self, row: Row, state: TextState | GrammarState, visit: Visit, constrained: bool
    ) -> Generator[Event | Request, Reply, SegmentOutput]:
        """Ask for the next segment of this state; returns its output."""
        params = self._params(row, state, visit, constrained)
        if row.decode_from is None:  # a segment arrives whole: decoding began at its request
            row.decode_from = time.perf_counter()
        reply = yield Generate(row.seq.row, params)
        if not isinstance(reply, SegmentOutput):
            raise TypeError(f"a segment was answered with {type(reply).__name__}")
        if row.first_token_at is None:
            row.first_token_at = time.perf_counter()
        row.segments_asked += 1
        return reply

    def _params(
        self, row: Row, state: TextState | GrammarState, visit: Visit, constrained: bool
    ) -> SegmentParams:
        left = self.budgets.max_tokens - row.stats.generated_tokens
        if state.max_tokens is not None:
            left = min(left, state.max_tokens - visit.steps)
        if constrained:  # grammar-forced tokens are generated too, but not counted
            left = 2 * left + CONSTRAINED_SLACK
        stop: tuple[str, ...] = ()
        if isinstance(state, TextState):
            triggers = [t.trigger for t in state.triggers]
            stop = trig.stop_strings(triggers, not constrained, bytes(visit.state_bytes))
        sampling = state.sampling or row.sampling
        # each request of a seeded row gets its own seed, so that retries differ
        seed = None if row.seed is None else (row.seed + row.segments_asked) % (1 << 63)
        return SegmentParams(
            max_tokens=max(1, left),
            stop=stop,
            stop_ids=self.stop_ids,
            constraint=state.constraint,
            close=state.close if isinstance(state, GrammarState) else None,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            seed=seed,
        )
