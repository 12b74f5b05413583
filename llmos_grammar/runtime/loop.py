"""One run of a machine: what a row does at each step, from the prompt to its Result.

A run is a generator (see requests.py): it yields events, and a request each
time it needs something from its driver: a `Step` (next-token logits) on an
engine that gives logits, a `Generate` (a segment) on one that gives segments,
an `ActionCall` at an action state. So one driver steps many runs in one
forward pass (batch.py) and runs their actions on worker threads.

The row's data is a `Row` (row.py); what acts on it is handed to the run:
`Moves` (queue text, enter a state, budgets), `TokenReplay` (what one token
does), `ActionStep` (an action state) and a decode for text and grammar
states, `TokenDecode` or `SegmentDecode` by what the engine gives.
"""

from __future__ import annotations

import time

from llmos_grammar.engines import Engine
from llmos_grammar.ir import ActionState, FinalState, Sampling
from llmos_grammar.runtime.action_step import ActionStep
from llmos_grammar.runtime.events import DoneEvent, Result, Stop, StopReason
from llmos_grammar.runtime.host import RunHost
from llmos_grammar.runtime.kv import KVSequence
from llmos_grammar.runtime.moves import Moves
from llmos_grammar.runtime.pieces import Pieces, joined
from llmos_grammar.runtime.prompt import encode, prompt_pieces
from llmos_grammar.runtime.row import Row, Steps, new_row
from llmos_grammar.runtime.segment_decode import SegmentDecode
from llmos_grammar.runtime.token_decode import TokenDecode
from llmos_grammar.runtime.token_replay import TokenReplay


class Run:
    """One row and the parts that act on it; `events()` drives it.

    The row lives on `seq` (a session's, continued by `turn`) or on a new row of
    `engine` (default: the host's engine). `key` (task index, sample) seeds it.
    """

    def __init__(
        self,
        rt: RunHost,
        task: str,
        *,
        engine: Engine | None = None,
        sampling: Sampling | None = None,
        key: tuple[int, int] = (0, 0),
        seq: KVSequence | None = None,
        turn: Pieces | None = None,
    ) -> None:
        self.rt = rt
        if seq is None:
            seq = KVSequence(rt.lm, engine if engine is not None else rt.engine())
        self.seq = seq
        start = rt.machine.start
        self.row: Row = new_row(task, seq, start, sampling or rt.sampling, key, turn)
        self.moves = Moves(rt.machine, rt.table, rt.lm.tokenizer, rt.budgets, rt.details)
        replay = TokenReplay(self.moves, rt.table, rt.lm.tokenizer, rt.lm.eos_ids)
        self.action = ActionStep(self.moves, rt.budgets)
        self.decode: TokenDecode | SegmentDecode
        if seq.engine.capabilities.output == "segments":
            self.decode = SegmentDecode(replay, rt.constraints, rt.budgets, rt.lm.eos_ids)
        else:
            self.decode = TokenDecode(replay, rt.constraints, rt.logits_processors, rt.details)

    def events(self) -> Steps:
        """The run: the prompt, then state after state until a final state or a stop."""
        row, machine = self.row, self.rt.machine
        self._prompt()
        reason: StopReason = "final"
        message = ""
        try:
            if machine.prompt.assistant_prefix:
                yield from self.moves.force(row, machine.prompt.assistant_prefix)
            yield from self.moves.enter(row, machine.start, "start", announce=False)
            while True:
                state = machine.states[row.state]
                if isinstance(state, FinalState):
                    message = f"reached final state {row.state!r}"
                    break
                if isinstance(state, ActionState):
                    yield from self.action.run(row, state)
                else:
                    yield from self.decode.decode(row, state)
        except Stop as stop:
            reason, message = stop.reason, stop.message
        yield DoneEvent(self._result(reason, message))

    def _prompt(self) -> None:
        """Queue the prompt (or a session's next turn); the row's completion starts after it."""
        row, tokenizer = self.row, self.rt.lm.tokenizer
        prompt = row.turn
        if prompt is None:
            prompt = prompt_pieces(self.rt.machine.prompt, tokenizer, row.task)
        prompt_ids = encode(tokenizer, prompt)
        row.seq.append(prompt_ids)
        row.seq.mark_floor()
        row.stats.prompt_tokens = len(prompt_ids)
        row.add_text("prompt", joined(prompt))

    def _result(self, reason: StopReason, message: str) -> Result:
        row, seq = self.row, self.row.seq
        _finish_stats(row)
        return Result(
            text="".join(s.text for s in row.transcript if s.source != "prompt"),
            final_state=row.state,
            stop_reason=reason,
            message=message,
            transcript=tuple(row.transcript),
            actions=tuple(row.actions),
            stats=row.stats,
            prompt_ids=tuple(seq.ids[: seq.floor]),
            completion_ids=tuple(seq.ids[seq.floor :]),
            chosen=tuple(seq.chosen[seq.floor :]),
        )


def _finish_stats(row: Row) -> None:
    """Counters and times of the run, from the row's engine counters and clock."""
    stats, now = row.stats, time.perf_counter()
    stats.total_s = now - row.t0
    stats.forward_passes = row.seq.forward_passes - row.passes0
    fed = row.seq.forward_tokens - row.fed0
    stats.forced_tokens = max(0, fed - stats.prompt_tokens - stats.generated_tokens)
    start = row.first_token_at if row.first_token_at is not None else now
    stats.time_to_first_token_s = start - row.t0
    begun = row.decode_from if row.decode_from is not None else start
    stats.decode_s = max(0.0, now - begun - stats.action_s)
