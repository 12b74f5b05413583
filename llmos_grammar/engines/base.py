"""The engine interface: rows of token ids sharing one model, and what an engine can do.

An engine holds many rows (token sequences) that share one model. The state
machine appends token ids to a row, drops a row's tail, and asks for either
the next-token logits of several rows at once (`LogitsEngine.forward`) or a
whole continuation of one row (`SegmentEngine.generate`: until a stop string,
the end of a structured-output grammar, end of sequence or a token limit).
Which of the two an engine gives, and what else it can do, it declares in its
`Capabilities`; the runtime asks those, never an engine's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

    from llmos_grammar.ir import GrammarSource

Output = Literal["logits", "segments"]


@dataclass(frozen=True)
class Capabilities:
    """What an engine does, declared in its registry entry (so asking imports nothing).

    `output`: "logits" (the runtime samples each token) or "segments" (the engine
    continues a row by a whole segment, and the runtime replays its tokens).
    `shares_prefix`: rows that start with the same ids share their cached part.
    `saves_state`: a prompt's computed state is kept on disk for later processes.
    `batch_invariant`: a row's logits do not depend on the other rows of a pass
    (up to float rounding), so greedy rows of a batch decode as they would alone.
    `adapters`: runs LoRA adapters on torch weights. `takes_args`: takes engine
    arguments (`--engine-arg KEY=VALUE`).
    Every engine closes (`close()`): its cache, threads, native memory.
    """

    output: Output
    shares_prefix: bool
    saves_state: bool
    batch_invariant: bool
    adapters: bool = False
    takes_args: bool = False


@dataclass
class EngineCounters:
    """What an engine (or one of its rows) did: forward passes and tokens fed."""

    forward_passes: int = 0
    tokens_fed: int = 0  # real tokens only (for a row: a shared prefix it reused counts)
    padding: int = 0  # masked filler tokens fed so that rows line up (whole engine only)


@runtime_checkable
class Engine(Protocol):
    """Rows of token ids sharing one model: what every engine keeps."""

    capabilities: Capabilities
    counters: EngineCounters

    def open_row(self) -> int:
        """A new empty row; returns its handle."""
        ...

    def append(self, row: int, tokens: Sequence[int]) -> None:
        """Queue `tokens` after the row's ids; they are fed at the next step."""
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

    def context_window(self) -> int | None:
        """How many ids one row may hold (None: the engine does not say)."""
        ...

    def close(self) -> None:
        """Free the cache, threads and native memory; the engine takes no more calls."""
        ...


@runtime_checkable
class LogitsEngine(Engine, Protocol):
    """An engine that gives logits: `forward` feeds every listed row's pending ids."""

    def forward(self, rows: Sequence[int]) -> dict[int, Tensor]:
        """Feed every listed row's pending ids in one step; float32 next-token logits per row."""
        ...


@runtime_checkable
class CopiesRows(Protocol):
    """An engine whose rows can start from another row's cached ids without computing them."""

    def copy_prefix(self, source: int, target: int, length: int) -> None:
        """Make empty row `target` hold `source`'s first `length` ids, sharing their cache."""
        ...


@runtime_checkable
class MeasuresCache(Protocol):
    """An engine that tells what its cache holds: bytes per cached id, and its capacity."""

    def cache_bytes_per_id(self) -> int:
        """Bytes of cache one cached id of a row takes (keys and values of every layer)."""
        ...

    def cache_capacity(self) -> int | None:
        """Cached ids all rows together may hold (None: bounded by memory only)."""
        ...


@dataclass(frozen=True)
class SegmentParams:
    """One segment request: continue a row's ids by at most `max_tokens` tokens.

    `stop`: strings that end the segment (the token that completes one is kept);
    `stop_ids`: token ids that end it (end of sequence), kept as the last token;
    `constraint`: the grammar the tokens must follow, then the literal `close` when
    given (the engine puts it in its own form: vLLM's structured outputs, say).
    """

    max_tokens: int
    stop: tuple[str, ...] = ()
    stop_ids: tuple[int, ...] = ()
    constraint: GrammarSource | None = None
    close: str | None = None
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
class SegmentEngine(Engine, Protocol):
    """An engine that gives segments: one request per segment, many in flight at once."""

    def generate(self, row: int, params: SegmentParams) -> Future[SegmentOutput]:
        """Continue the row's ids (cached and pending) by one segment; the row is unchanged."""
        ...


def gives_logits(engine: Engine) -> LogitsEngine:
    """`engine` as a LogitsEngine; TypeError when its capabilities say it gives segments."""
    if engine.capabilities.output != "logits" or not isinstance(engine, LogitsEngine):
        raise TypeError(f"{type(engine).__name__} gives {engine.capabilities.output}, not logits")
    return engine


def gives_segments(engine: Engine) -> SegmentEngine:
    """`engine` as a SegmentEngine; TypeError when its capabilities say it gives logits."""
    if engine.capabilities.output != "segments" or not isinstance(engine, SegmentEngine):
        raise TypeError(f"{type(engine).__name__} gives {engine.capabilities.output}, not segments")
    return engine
