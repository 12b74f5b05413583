"""`Session`: many turns of one machine on one engine row; the KV cache lives across turns.

Each turn appends the chat template's end of turn, the user turn and the
assistant prefix after the previous reply, then runs the machine from `start`
on the same row: the conversation so far is never fed again. Action state (a
persistent Python interpreter, the runner's sandboxes) lives as long as the
session, except that an interrupted action is killed with its sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

from llmos_grammar.engines import Engine
from llmos_grammar.errors import SessionError
from llmos_grammar.ir import Machine, ModelRef
from llmos_grammar.models import LoadedModel
from llmos_grammar.runtime.drive import deferred_interrupt, drive
from llmos_grammar.runtime.engine import Runtime, RuntimeOptions
from llmos_grammar.runtime.events import DoneEvent, Event, Result
from llmos_grammar.runtime.kv import KVSequence
from llmos_grammar.runtime.loop import Run
from llmos_grammar.runtime.pieces import Pieces, without_start
from llmos_grammar.runtime.prompt import encode, history_pieces, next_turn_pieces, prompt_pieces

DEFAULT_WINDOW = 2048  # when neither the spec nor the model says


@dataclass(frozen=True)
class Turn:
    """One exchange: user text, reply, where the turn starts in the row (None: replayed)."""

    user: str
    reply: str
    start: int | None
    result: Result | None = None


@dataclass(frozen=True)
class Compaction:
    """Oldest turns dropped to stay within the context, and the re-prefill that cost."""

    dropped: int
    kept: int
    tokens: int
    seconds: float


class Session:
    """A conversation with `machine`; `send`/`stream` a turn, `undo`, `reset`, `save`, `load`.

    `runtime` (or the keyword arguments of `Runtime`) says how the model and
    actions run. `notify` receives one line for each thing the session did on
    its own (turns dropped, a turn rolled back).
    """

    def __init__(
        self,
        machine: Machine,
        model: LoadedModel | ModelRef | str | None = None,
        *,
        runtime: Runtime | None = None,
        notify: Callable[[str], None] | None = None,
        **runtime_kw: Unpack[RuntimeOptions],
    ) -> None:
        self._owns_runtime = runtime is None
        self.rt = runtime if runtime is not None else Runtime(machine, model, **runtime_kw)
        self.machine = self.rt.machine
        if self.rt.capabilities.output != "logits":
            if self._owns_runtime:
                self.rt.close()
            raise SessionError(
                f"a session runs on an engine that gives logits (transformers or llamacpp), "
                f"not {self.rt.engine_name}: use --engine transformers or --engine llamacpp"
            )
        self.engine: Engine = self.rt.engine()
        self.seq = KVSequence(self.rt.lm, self.engine)
        self.turns: list[Turn] = []
        self.compactions: list[Compaction] = []
        self.notify = notify or (lambda line: None)
        window = self.engine.context_window() or DEFAULT_WINDOW
        self.max_context = self.machine.session.max_context or window
        self.reserve = min(self.rt.budgets.max_tokens, self.max_context // 2)

    # ---- turns ------------------------------------------------------------------
    def stream(self, text: str) -> Iterator[Event]:
        """Run one turn; yield its events, the last a DoneEvent.

        When the turn stops early (Ctrl-C, an error) it is rolled back out of
        the cache and the session is as it was before the turn.
        """
        turn = self._prepare(text)
        start = len(self.seq.ids)
        run = Run(self.rt, text, seq=self.seq, turn=turn)
        done = False
        try:
            for event in drive(run, self.engine):
                if isinstance(event, DoneEvent):
                    reply = event.result.text
                    self.turns.append(Turn(text, reply, start, event.result))
                    done = True
                yield event
        finally:
            if not done:
                self.seq.truncate(start)

    def send(self, text: str) -> Result:
        """Run one turn and return its Result."""
        for event in self.stream(text):
            if isinstance(event, DoneEvent):
                return event.result
        raise RuntimeError("the turn ended without a result")

    def _prepare(self, text: str) -> Pieces | None:
        """The text this turn appends (None: the whole first prompt); drops old turns to fit."""
        tok, prompt = self.rt.lm.tokenizer, self.machine.prompt
        first = len(encode(tok, prompt_pieces(prompt, tok, text)))
        if first + self.reserve > self.max_context:
            raise SessionError(
                f"this turn is {first} tokens with the system prompt; the session holds "
                f"{self.max_context} and keeps {self.reserve} for the reply: shorten it"
            )
        if not self.turns:
            self.seq.truncate(0)
            return None
        turn = self._next_turn(text)
        need = len(encode(tok, turn)) + self.reserve
        if len(self.seq.ids) + need > self.max_context:
            self._compact(need)
            if not self.turns:
                return None
            turn = self._next_turn(text)
        return turn

    def _next_turn(self, text: str) -> Pieces:
        turn = next_turn_pieces(self.machine.prompt, self.rt.lm.tokenizer, text)
        ids = self.seq.ids
        if ids and ids[-1] in self.rt.lm.eos_ids:  # the reply ended with the end of its turn
            end = self.rt.lm.tokenizer.decode([ids[-1]])
            rest = without_start(turn, end)
            turn = turn if rest is None else rest
        return turn

    # ---- the context --------------------------------------------------------------
    def _compact(self, need: int) -> None:
        """Drop the oldest turns until `need` more tokens fit; re-prefill what is kept."""
        tok, prompt = self.rt.lm.tokenizer, self.machine.prompt
        kept = list(self.turns)
        ids: list[int] = []
        while kept:
            kept.pop(0)
            ids = encode(tok, history_pieces(prompt, tok, [(t.user, t.reply) for t in kept]))
            if not kept or len(ids) + need <= self.max_context:
                break
        dropped = len(self.turns) - len(kept)
        seconds = self._refill([(t.user, t.reply) for t in kept])
        self.compactions.append(Compaction(dropped, len(kept), len(ids), seconds))
        self.notify(
            f"context near {self.max_context} tokens: dropped the oldest {dropped} turn(s), "
            f"re-prefilled {len(kept)} turn(s) ({len(ids)} tokens) in {seconds:.2f} s"
        )

    def _refill(self, exchanges: list[tuple[str, str]]) -> float:
        """A fresh cache holding `exchanges` (one prefill); returns its seconds."""
        self.seq.truncate(0)
        self.turns = [Turn(user, reply, None) for user, reply in exchanges]
        if not exchanges:
            return 0.0
        tok = self.rt.lm.tokenizer
        self.seq.append(encode(tok, history_pieces(self.machine.prompt, tok, exchanges)))
        started = time.perf_counter()
        drive_prefill(self.seq)
        return time.perf_counter() - started

    @property
    def context_tokens(self) -> int:
        """Tokens in the session's context now."""
        return len(self.seq.ids)

    def undo(self) -> Turn | None:
        """Remove the last turn from the context (crops the cache); returns it, or None."""
        if not self.turns:
            return None
        last = self.turns.pop()
        if last.start is not None:
            self.seq.truncate(last.start)
        else:  # a replayed turn: its place in the row is not known, so rebuild
            self._refill([(t.user, t.reply) for t in self.turns])
        return last

    def reset(self) -> None:
        """A fresh context, and fresh action state (persistent interpreters end)."""
        self.seq.truncate(0)
        self.turns = []
        self.rt.abort_actions([])

    def save(self, path: str | Path) -> None:
        """Write the session as a trace: a header, then each turn's user text and result."""
        from llmos_grammar.runtime.session_file import write_session

        write_session(path, self.machine, self.turns)

    def load(self, path: str | Path) -> int:
        """Replay a saved session's turns into a fresh cache (actions are not run again)."""
        from llmos_grammar.runtime.session_file import read_exchanges

        exchanges = read_exchanges(path)
        self.rt.abort_actions([])
        self._refill(exchanges)
        return len(exchanges)

    # ---- lifetime -------------------------------------------------------------------
    def close(self) -> None:
        """Give the row back and close the runtime (when the session made it)."""
        self.seq.close()
        if self._owns_runtime:
            self.rt.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def drive_prefill(seq: KVSequence) -> None:
    """Feed the row's pending ids now (an interrupt waits until the pass is done)."""
    with deferred_interrupt():
        seq.flush()
