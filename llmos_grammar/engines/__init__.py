"""Engines: the narrow interface between the decode state machine and a model.

An engine holds many rows (token sequences) that share one model. The state
machine appends token ids to a row, drops a row's tail, and asks for the
next-token logits of several rows at once; the engine decides how to batch
them. `TransformersEngine` keeps every row in one shared KV cache; a llama.cpp
engine would map rows to `seq_id`s of one `llama_batch`, a vLLM engine to
requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class EngineCounters:
    """What an engine (or one of its rows) did: forward passes and tokens fed."""

    forward_passes: int = 0
    tokens_fed: int = 0  # real tokens only (for a row: a shared prefix it reused counts)
    padding: int = 0  # masked filler tokens fed so that rows line up (whole engine only)


class Engine(Protocol):
    """Rows of token ids sharing one model; `forward` feeds every listed row's pending ids."""

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

    def forward(self, rows: Sequence[int]) -> dict[int, Any]:
        """Feed every listed row's pending ids in one step; float32 next-token logits per row."""
        ...

    def close_row(self, row: int) -> None:
        """Forget the row and free its part of the cache."""
        ...


def refeed_last(engine: Engine, row: int) -> None:
    """A row truncated back into its cache has no logits: queue its last id again."""
    ids = engine.ids(row)
    if not ids:
        raise RuntimeError("no logits: the sequence is empty")
    last = ids[-1]
    engine.truncate(row, len(ids) - 1)
    engine.append(row, [last])


__all__ = ["Engine", "EngineCounters", "refeed_last"]
