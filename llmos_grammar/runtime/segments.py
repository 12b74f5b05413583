"""Text and grammar states on a segment engine (vLLM): one request per segment, then replay.

A segment request continues the row's ids until a stop string (the state's
triggers and their started prefixes), the end of the state's grammar (its
close delimiter, as structured outputs), end of sequence or the budget. Its
tokens are then replayed one by one through the same checks as the
token-level loop: budgets, trigger detection (split across tokens included),
grammar matcher, close delimiter, healing. Tokens after the point where the
state ends are dropped; the next request continues from the healed ids, and
the server's prefix cache makes the shared prefix free.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator

from llmos_grammar.engines import SegmentEngine, SegmentOutput, SegmentParams
from llmos_grammar.errors import DecodeError
from llmos_grammar.ir import GrammarState, TextState
from llmos_grammar.runtime import triggers as trig
from llmos_grammar.runtime.events import Event
from llmos_grammar.runtime.requests import Generate, Reply, Request
from llmos_grammar.runtime.row import Steps
from llmos_grammar.runtime.token_replay import TokenReplay, Visit

CONSTRAINED_SLACK = 16  # extra tokens a constrained segment may take for grammar-forced text


class SegmentDecode(TokenReplay):
    """The decode of text and grammar states when the row's engine is a SegmentEngine."""

    segments_requested: int = 0

    def _segmented(self) -> bool:
        return isinstance(self.seq.engine, SegmentEngine)

    def _decode_segments(self, state: TextState | GrammarState) -> Steps:
        compiled = self.rt.constraints.get(state.name)
        matcher = compiled.new() if compiled is not None else None
        visit = self.new_visit(state, matcher)
        entry = matcher.forced() if matcher is not None else []
        pending: deque[int] = deque()
        requests = 0
        while True:
            self._check_budgets(visit.steps, state.max_tokens)
            if not pending:
                if matcher is not None and requests:
                    raise DecodeError(
                        "the engine ended a constrained segment before its grammar did",
                        self.state,
                        visit.steps,
                        None,
                    )
                out = yield from self._segment(state, visit, matcher is not None)
                requests += 1
                pending.extend(out.tokens)
                if not pending:
                    raise DecodeError(
                        "the engine returned an empty segment", self.state, visit.steps, None
                    )
                if entry and list(pending)[: len(entry)] == entry:
                    for _ in entry:
                        pending.popleft()
                    if (yield from self.replay_entry(visit, entry)):
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

            if (yield from self.replay_token(visit, token, take)):
                return

    def _segment(
        self, state: TextState | GrammarState, visit: Visit, constrained: bool
    ) -> Generator[Event | Request, Reply, SegmentOutput]:
        """Ask for the next segment of this state; returns its output."""
        params = self._segment_params(state, visit, constrained)
        request = Generate(self.seq.row, params)
        if self.decode_from is None:  # a segment arrives whole: decoding began at its request
            self.decode_from = time.perf_counter()
        reply = yield request
        if reply is None:  # driven by hand
            engine = self.seq.engine
            assert isinstance(engine, SegmentEngine)
            reply = engine.generate(self.seq.row, params).result()
        if not isinstance(reply, SegmentOutput):
            raise TypeError(f"a segment was answered with {type(reply).__name__}")
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.segments_requested += 1
        return reply

    def _segment_params(
        self, state: TextState | GrammarState, visit: Visit, constrained: bool
    ) -> SegmentParams:
        steps = visit.steps
        budgets = self.rt.budgets
        left = budgets.max_tokens - self.stats.generated_tokens
        if state.max_tokens is not None:
            left = min(left, state.max_tokens - steps)
        if constrained:  # grammar-forced tokens are generated too, but not counted
            left = 2 * left + CONSTRAINED_SLACK
        stop: tuple[str, ...] = ()
        if isinstance(state, TextState):
            triggers = [t.trigger for t in state.triggers]
            stop = trig.stop_strings(triggers, not constrained, bytes(visit.state_bytes))
        sampling = state.sampling or self.sampling
        return SegmentParams(
            max_tokens=max(1, left),
            stop=stop,
            stop_ids=tuple(sorted(self.rt.lm.eos_ids)),
            constraint=state.constraint,
            close=state.close if isinstance(state, GrammarState) else None,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            seed=self._segment_seed(),
        )

    def _segment_seed(self) -> int | None:
        if self.generator is None:
            return None
        return int(self.generator.initial_seed() + self.segments_requested) % (1 << 63)
