"""A row: the data of one run (one row of a batch), and nothing that acts on it.

What acts on a row is handed to its run (loop.py): `Moves` (shared moves:
queue text, enter a state, budgets), `TokenReplay` (what one token does),
`ActionStep` (an action state), and `TokenDecode` or `SegmentDecode` (a text or
grammar state, by what the engine gives).
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmos_grammar.ir import Sampling
from llmos_grammar.runtime.events import ActionRecord, Event, Source, Span, Stats, StepDetail
from llmos_grammar.runtime.kv import KVSequence
from llmos_grammar.runtime.pieces import Pieces
from llmos_grammar.runtime.requests import Reply, Request
from llmos_grammar.runtime.sampling import row_seed, seeded_generator

if TYPE_CHECKING:
    import torch

# A run yields events and requests; its driver sends replies back (see requests.py).
Steps = Generator[Event | Request, Reply, None]


def _utf8() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


@dataclass
class Row:
    """Everything one run owns: its token sequence, state, captures, transcript, stats."""

    task: str
    seq: KVSequence
    state: str  # the state the row is in
    sampling: Sampling
    seed: int | None  # this row's seed (from the spec's and the row's key), None: unseeded
    generator: torch.Generator | None  # seeded from `seed`, for the token-level sampler
    # A run that continues a sequence (a session's next turn) appends `turn` instead
    # of the whole prompt; its stats count from where the row stood.
    turn: Pieces | None = None
    captures: dict[str, str] = field(default_factory=dict)  # state -> the text it captured
    transcript: list[Span] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    decoder: codecs.IncrementalDecoder = field(default_factory=_utf8)  # streamed text
    t0: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    decode_from: float | None = None  # the first token's step, or the first segment's request
    passes0: int = 0  # the row's engine counters when the run began
    fed0: int = 0
    segments_asked: int = 0  # segment requests made (each gets its own seed)
    detail: StepDetail | None = None  # the last sampled token's step, until its text is shown

    def add_text(self, source: Source, text: str) -> None:
        """Add text to the transcript, joining it to the last span of the same state and source."""
        last = self.transcript[-1] if self.transcript else None
        if last and last.state == self.state and last.source == source:
            self.transcript[-1] = Span(self.state, source, last.text + text)
        elif text:
            self.transcript.append(Span(self.state, source, text))

    def stream_text(self, data: bytes) -> str:
        """The text of `data` so far (a UTF-8 character split across tokens waits)."""
        return self.decoder.decode(data)


def new_row(
    task: str,
    seq: KVSequence,
    start: str,
    sampling: Sampling,
    key: tuple[int, int] = (0, 0),
    turn: Pieces | None = None,
) -> Row:
    """A row at state `start` on `seq`; `key` (task index, sample) picks its seed."""
    seed = row_seed(sampling, key)
    return Row(
        task,
        seq,
        start,
        sampling,
        seed,
        seeded_generator(seed),
        turn=turn,
        passes0=seq.forward_passes,
        fed0=seq.forward_tokens,
    )
