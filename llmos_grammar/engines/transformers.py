"""A transformers engine: every row in one shared DynamicCache, told apart by a 4D mask.

Rows of different lengths share the cache's columns. Each step appends the
same number of columns to every row (the widest row's pending tokens); a row
that feeds fewer tokens gets masked pads before its tokens, so every row's
last token sits in the last column and one logits position serves them all.
Positions are explicit: a row's next position is the number of its live
cached tokens. Columns a row truncated are masked out (one row of a shared
cache cannot be cropped); trailing columns dead for every row are cropped.
A row joining a busy cache starts from the keys and values of the prefix it
shares with the first prompt the engine saw (a system prompt, say), and the
rest of its prompt is prefilled on its own and spliced in, so the others are
not padded to its prompt length. When dead columns pile up the
cache is compacted: each row's live columns are gathered and left-padded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmos_grammar.engines import EngineCounters, refeed_last, shared_prefix
from llmos_grammar.errors import ModelError
from llmos_grammar.models import LoadedModel

MIN_SHARED = 16  # shortest shared prefix worth copying instead of recomputing


@dataclass
class _Row:
    slot: int  # index in the cache's batch dimension
    ids: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)  # cache column of each cached id
    logits: Any = None  # next-token logits after the last cached id
    counters: EngineCounters = field(default_factory=EngineCounters)


@dataclass
class _Feed:
    """One forward's inputs: ids, positions, which columns are real, and the 4D mask."""

    input_ids: Any
    positions: Any
    new_live: Any
    widths: dict[int, int]  # row -> tokens fed


class TransformersEngine:
    """Rows of one causal LM in one shared KV cache (see the module docstring)."""

    def __init__(self, lm: LoadedModel, *, compact_min: int = 64) -> None:
        import torch

        self.lm = lm
        self.device = lm.device
        self.compact_min = compact_min
        self.counters = EngineCounters()
        self._rows: dict[int, _Row] = {}
        self._slots: list[int] = []  # slot -> row handle
        self._next = 0
        self._cache_kw = _cache_keyword(lm.model)
        self.cache: Any = self._new_cache()
        self.live = torch.zeros((0, 0), dtype=torch.bool, device=self.device)
        self._prefix_ids: list[int] = []  # the first prompt seen, and its keys and values
        self._prefix_kv: list[tuple[Any, Any]] = []

    # ---- rows -----------------------------------------------------------------
    def open_row(self) -> int:
        import torch

        handle = self._next
        self._next += 1
        self._rows[handle] = _Row(slot=len(self._slots))
        self._slots.append(handle)
        blank = torch.zeros((1, self.width), dtype=torch.bool, device=self.device)
        self.live = torch.cat([self.live, blank])
        self._map_layers(lambda t: torch.cat([t, t.new_zeros((1, *t.shape[1:]))]))
        return handle

    def append(self, row: int, tokens: Sequence[int]) -> None:
        self._rows[row].ids.extend(int(t) for t in tokens)

    def truncate(self, row: int, length: int) -> None:
        r = self._rows[row]
        del r.ids[length:]
        if len(r.cols) > length:
            self.live[r.slot, r.cols[length:]] = False
            del r.cols[length:]
            r.logits = None
            self._trim_tail()

    def ids(self, row: int) -> list[int]:
        return self._rows[row].ids

    def cached(self, row: int) -> int:
        return len(self._rows[row].cols)

    def row_counters(self, row: int) -> EngineCounters:
        return self._rows[row].counters

    def close_row(self, row: int) -> None:
        import torch

        r = self._rows.pop(row)
        del self._slots[r.slot]
        if not self._rows:
            self.cache = self._new_cache()
            self.live = torch.zeros((0, 0), dtype=torch.bool, device=self.device)
            return
        keep = torch.tensor(
            [s for s in range(len(self._slots) + 1) if s != r.slot], device=self.device
        )
        self.live = self.live[keep]
        self._map_layers(lambda t: t[keep])
        for slot, handle in enumerate(self._slots):
            self._rows[handle].slot = slot
        self._trim_tail()

    @property
    def width(self) -> int:
        """Columns in the shared cache (live or not)."""
        return int(self.live.shape[1])

    # ---- forward ----------------------------------------------------------------
    def forward(self, rows: Sequence[int]) -> dict[int, Any]:
        """Feed the listed rows' pending ids; rows with none pending keep their logits."""
        feed: list[int] = []
        for row in rows:
            r = self._rows[row]
            if len(r.ids) == len(r.cols) and r.logits is None:
                refeed_last(self, row)
            if len(r.ids) > len(r.cols):
                feed.append(row)
        for row in feed:
            if not self._rows[row].cols:
                self._start_from_prefix(row)
        fresh = [row for row in feed if not self._rows[row].cols]
        if fresh and self.width > 0 and self.live.any():
            self._prefill_apart(fresh)
            feed = [row for row in feed if row not in fresh]
        if feed:
            self._step(feed)
        if not self._prefix_ids:
            self._remember_prefix()
        self._maybe_compact()
        return {row: self._rows[row].logits for row in rows}

    def _step(self, feed: list[int]) -> None:
        import torch

        batch, width = len(self._slots), self.width
        inputs = self._inputs(feed, {row: self._rows[row].slot for row in feed}, batch)
        step = int(inputs.input_ids.shape[1])
        mask = None
        if batch > 1 or not bool(self.live.all()) or not bool(inputs.new_live.all()):
            mask = _mask_4d(self.live, inputs.new_live)
        logits = self._model(inputs, mask, self.cache)
        for row, fed in inputs.widths.items():
            r = self._rows[row]
            r.cols.extend(range(width + step - fed, width + step))
            r.logits = logits[r.slot]
            r.counters.forward_passes += 1
            r.counters.tokens_fed += fed
        self.live = torch.cat([self.live, inputs.new_live], dim=1)
        self.counters.forward_passes += 1
        self.counters.tokens_fed += sum(inputs.widths.values())
        self.counters.padding += batch * step - sum(inputs.widths.values())

    def _prefill_apart(self, fresh: list[int]) -> None:
        """Prefill rows with nothing cached in a cache of their own, then splice them in."""
        import torch

        local = {row: i for i, row in enumerate(fresh)}
        inputs = self._inputs(fresh, local, len(fresh))
        step = int(inputs.input_ids.shape[1])
        empty = torch.zeros((len(fresh), 0), dtype=torch.bool, device=self.device)
        mask = None if len(fresh) == 1 else _mask_4d(empty, inputs.new_live)
        apart = self._new_cache()
        logits = self._model(inputs, mask, apart)
        if step > self.width:
            self._pad_left(step - self.width)
        width = self.width
        slots = torch.tensor([self._rows[row].slot for row in fresh], device=self.device)
        for layer, other in zip(self.cache.layers, apart.layers, strict=True):
            layer.keys[slots, :, width - step :] = other.keys
            layer.values[slots, :, width - step :] = other.values
        for row, fed in inputs.widths.items():
            r = self._rows[row]
            r.cols = list(range(width - fed, width))
            self.live[r.slot, width - fed :] = True
            r.logits = logits[local[row]]
            r.counters.forward_passes += 1
            r.counters.tokens_fed += fed
        self.counters.forward_passes += 1
        self.counters.tokens_fed += sum(inputs.widths.values())
        self.counters.padding += len(fresh) * step - sum(inputs.widths.values())

    def _inputs(self, feed: list[int], slots: dict[int, int], batch: int) -> _Feed:
        """Pending ids right-aligned in a (batch, step) block; everything else is masked pads."""
        import torch

        pending = {row: self._rows[row].ids[len(self._rows[row].cols) :] for row in feed}
        step = max(len(p) for p in pending.values())
        ids = [[0] * step for _ in range(batch)]
        pos = [[0] * step for _ in range(batch)]
        live = [[False] * step for _ in range(batch)]
        for row, tokens in pending.items():
            s, n, start = slots[row], len(tokens), len(self._rows[row].cols)
            ids[s][step - n :] = tokens
            pos[s][step - n :] = range(start, start + n)
            live[s][step - n :] = [True] * n
        dev = self.device
        return _Feed(
            torch.tensor(ids, dtype=torch.long, device=dev),
            torch.tensor(pos, dtype=torch.long, device=dev),
            torch.tensor(live, dtype=torch.bool, device=dev),
            {row: len(tokens) for row, tokens in pending.items()},
        )

    def _model(self, inputs: _Feed, mask: Any, cache: Any) -> Any:
        import torch

        with torch.inference_mode():
            out = self.lm.model(
                input_ids=inputs.input_ids,
                position_ids=inputs.positions,
                attention_mask=mask,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_kw: cache},
            )
        return out.logits[:, -1].float()

    # ---- a shared prefix ----------------------------------------------------------
    def _remember_prefix(self) -> None:
        """Keep the keys and values of the first row long enough to be worth sharing."""
        import torch

        for r in self._rows.values():
            if len(r.cols) >= MIN_SHARED:
                index = torch.tensor(r.cols, device=self.device)
                self._prefix_ids = r.ids[: len(r.cols)]
                self._prefix_kv = [
                    (layer.keys[r.slot, :, index][None], layer.values[r.slot, :, index][None])
                    for layer in self.cache.layers
                ]
                return

    def _start_from_prefix(self, row: int) -> None:
        """Copy the shared prefix into a row with nothing cached (at least one id stays pending)."""
        r = self._rows[row]
        shared = shared_prefix(r.ids, self._prefix_ids)
        if shared < MIN_SHARED:
            return
        if self.width == 0:  # an empty cache (the rows before have left): start its layers
            for layer, (keys, values) in zip(self.cache.layers, self._prefix_kv, strict=True):
                if getattr(layer, "keys", None) is None or layer.keys.dim() != 4:
                    layer.lazy_initialization(keys, values)
                batch = len(self._slots)
                layer.keys = keys.new_zeros((batch, keys.shape[1], 0, keys.shape[3]))
                layer.values = values.new_zeros((batch, values.shape[1], 0, values.shape[3]))
        if shared > self.width:
            self._pad_left(shared - self.width)
        width = self.width
        for layer, (keys, values) in zip(self.cache.layers, self._prefix_kv, strict=True):
            layer.keys[r.slot, :, width - shared :] = keys[0, :, :shared]
            layer.values[r.slot, :, width - shared :] = values[0, :, :shared]
        r.cols = list(range(width - shared, width))
        self.live[r.slot, width - shared :] = True
        r.counters.tokens_fed += shared  # in the row's context as if fed

    # ---- cache upkeep -------------------------------------------------------------
    def compact(self) -> None:
        """Gather each row's live columns, left-padded to the longest row."""
        import torch

        longest = max((len(r.cols) for r in self._rows.values()), default=0)
        batch = len(self._slots)
        index = torch.zeros((batch, longest), dtype=torch.long, device=self.device)
        live = torch.zeros((batch, longest), dtype=torch.bool, device=self.device)
        for r in self._rows.values():
            n = len(r.cols)
            if n:
                index[r.slot, longest - n :] = torch.tensor(r.cols, device=self.device)
                live[r.slot, longest - n :] = True
            r.cols = list(range(longest - n, longest))

        def gather(t: Any) -> Any:
            full = index[:, None, :, None].expand(t.shape[0], t.shape[1], longest, t.shape[3])
            return torch.gather(t, 2, full)

        self._map_layers(gather)
        self.live = live

    def _maybe_compact(self) -> None:
        longest = max((len(r.cols) for r in self._rows.values()), default=0)
        if self.width - longest >= max(self.compact_min, longest // 2):
            self.compact()

    def _trim_tail(self) -> None:
        """Crop trailing columns that no row uses."""
        if self.width == 0:
            return
        used = self.live.any(dim=0).nonzero()
        keep = int(used[-1].item()) + 1 if used.numel() else 0
        if keep < self.width:
            self.live = self.live[:, :keep]
            self._map_layers(lambda t: t[:, :, :keep])

    def _pad_left(self, n: int) -> None:
        import torch

        blank = torch.zeros((len(self._slots), n), dtype=torch.bool, device=self.device)
        self.live = torch.cat([blank, self.live], dim=1)
        self._map_layers(
            lambda t: torch.cat([t.new_zeros((t.shape[0], t.shape[1], n, t.shape[3])), t], dim=2)
        )
        for r in self._rows.values():
            r.cols = [c + n for c in r.cols]

    def _map_layers(self, fn: Callable[[Any], Any]) -> None:
        """Replace every initialized layer's keys and values by `fn` of them."""
        for layer in self.cache.layers:
            if getattr(layer, "keys", None) is None or layer.keys.dim() != 4:
                continue
            layer.keys = fn(layer.keys)
            layer.values = fn(layer.values)

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.lm.model.config)
        for layer in cache.layers:
            if type(layer).__name__ != "DynamicLayer":
                raise ModelError(
                    f"{self.lm.name}: cache layers of type {type(layer).__name__} "
                    "(sliding window) are not supported by the shared-cache engine"
                )
        return cache


def _mask_4d(past: Any, new: Any) -> Any:
    """(batch, 1, step, past + step) booleans: live past columns, causal new ones.

    A pad attends to itself only, so no query row is fully masked (SDPA would
    return NaN there and the NaN would reach later layers through its values).
    """
    import torch

    batch, step = new.shape
    eye = torch.eye(step, dtype=torch.bool, device=new.device)
    causal = torch.ones((step, step), dtype=torch.bool, device=new.device).tril()
    fresh = (causal[None] & new[:, None, :]) | eye[None]
    old = past[:, None, :].expand(batch, step, past.shape[1])
    return torch.cat([old, fresh], dim=2)[:, None]


def _cache_keyword(model: Any) -> str:
    """`cache` in recent transformers, `past_key_values` before."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


__all__ = ["TransformersEngine"]
