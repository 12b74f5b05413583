"""Engines: the narrow interface between the decode state machine and a model.

An engine holds many rows (token sequences) that share one model. The state
machine appends token ids to a row, drops a row's tail, and asks for the
next-token logits of several rows at once; the engine decides how to batch
them. `TransformersEngine` keeps every row in one shared KV cache; the llama.cpp
engine maps rows to `seq_id`s of one `llama_batch`.

A `SegmentEngine` (vLLM) gives no logits: it continues a row's ids by a whole
segment in one request (until a stop string, the end of a structured-output
grammar, end of sequence or a token limit), and the state machine replays the
segment's tokens one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass
class EngineCounters:
    """What an engine (or one of its rows) did: forward passes and tokens fed."""

    forward_passes: int = 0
    tokens_fed: int = 0  # real tokens only (for a row: a shared prefix it reused counts)
    padding: int = 0  # masked filler tokens fed so that rows line up (whole engine only)


class Rows(Protocol):
    """Rows of token ids sharing one model: what every engine keeps."""

    counters: EngineCounters

    def open_row(self) -> int:
        """A new empty row; returns its handle."""
        ...

    def append(self, row: int, tokens: Sequence[int]) -> None:
        """Queue `tokens` after the row's ids; they are fed at the next `forward`."""
        ...

    def truncate(self, row: int, length: int) -> None:
        """Drop the row's ids from `length` on (cached or not)."""
        ...

    def ids(self, row: int) -> list[int]:
        """The row's ids, cached and pending (the engine's own list: do not modify)."""
        ...

    def cached(self, row: int) -> int:
        """How many of the row's ids are already in the cache."""
        ...

    def row_counters(self, row: int) -> EngineCounters:
        """Forward passes that fed this row and the tokens fed for it."""
        ...

    def close_row(self, row: int) -> None:
        """Forget the row and free its part of the cache."""
        ...


class Engine(Rows, Protocol):
    """A token-level engine: `forward` feeds every listed row's pending ids."""

    def forward(self, rows: Sequence[int]) -> dict[int, Any]:
        """Feed every listed row's pending ids in one step; float32 next-token logits per row."""
        ...


@dataclass(frozen=True)
class SegmentParams:
    """One segment request: continue a row's ids by at most `max_tokens` tokens.

    `stop`: strings that end the segment (the token that completes one is kept);
    `stop_ids`: token ids that end it (end of sequence), kept as the last token;
    `grammar`: an llguidance grammar (JSON or Lark) the tokens must follow.
    """

    max_tokens: int
    stop: tuple[str, ...] = ()
    stop_ids: tuple[int, ...] = ()
    grammar: str | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None


SegmentEnd = Literal["stop", "length"]


@dataclass(frozen=True)
class SegmentOutput:
    """The tokens a segment request produced, and why it ended."""

    tokens: tuple[int, ...]
    end: SegmentEnd


@runtime_checkable
class SegmentEngine(Rows, Protocol):
    """A segment-level engine (vLLM): one request per segment, many in flight at once."""

    def generate(self, row: int, params: SegmentParams) -> Future[SegmentOutput]:
        """Continue the row's ids (cached and pending) by one segment; the row is unchanged."""
        ...


AnyEngine = Engine | SegmentEngine


def shared_prefix(ids: Sequence[int], prefix: Sequence[int]) -> int:
    """How many leading ids a row shares with a cached prefix, leaving its last id to feed
    (the row needs logits after it)."""
    shared, limit = 0, min(len(ids) - 1, len(prefix))
    while shared < limit and ids[shared] == prefix[shared]:
        shared += 1
    return shared


def first_shares(fresh: Sequence[Sequence[int]], minimum: int) -> bool:
    """Whether rows starting together should wait for the first one's prompt: another of
    them shares at least `minimum` leading ids with it (a system prompt, say)."""
    return any(shared_prefix(ids, fresh[0]) >= minimum for ids in fresh[1:])


def refeed_last(engine: Engine, row: int) -> None:
    """A row truncated back into its cache has no logits: queue its last id again."""
    ids = engine.ids(row)
    if not ids:
        raise RuntimeError("no logits: the sequence is empty")
    last = ids[-1]
    engine.truncate(row, len(ids) - 1)
    engine.append(row, [last])


__all__ = [
    "AnyEngine",
    "Engine",
    "EngineCounters",
    "Rows",
    "SegmentEngine",
    "SegmentEnd",
    "SegmentOutput",
    "SegmentParams",
    "first_shares",
    "refeed_last",
    "shared_prefix",
]
