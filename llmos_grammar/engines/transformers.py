"""A transformers engine: every row packed into one cache sequence, told apart by a mask.

The cache holds a single sequence of columns (batch dimension 1), and every
row owns a set of them, as in llama.cpp's unified KV cache. A forward pass
packs all listed rows' pending ids side by side into one sequence: each token
gets its row's next position and a mask row that sees its row's cached
columns and its row's earlier tokens of the pass. So rows of any length need
no padding, a row that takes 30 injected tokens costs 30 tokens of compute
and not 30 for every row, and a joining row's prompt rides in the same pass.
Logits are computed only at each row's last fed token.

The first prompt long enough to share (a system prompt, say) stays pinned; a
row that starts with the same ids sees those columns instead of computing
them again. Truncating a row hides its columns from it; columns no row sees
are dropped from the end at once and from the middle when enough pile up
(compaction). Keys and values live in buffers that grow by doubling, so a
step writes its new columns in place instead of copying the whole cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmos_grammar.engines.base import Capabilities, EngineCounters
from llmos_grammar.engines.onednn import use_onednn_linears
from llmos_grammar.engines.registry import ENGINES
from llmos_grammar.engines.rows import first_shares, refeed_last, shared_prefix
from llmos_grammar.errors import ModelError
from llmos_grammar.ir import ModelRef
from llmos_grammar.models import LoadedModel, load_model

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import DynamicCache

    from llmos_grammar.engines.growing import GrowingLayer

MIN_SHARED = 16  # shortest shared prefix worth pinning instead of recomputing
CHUNK = 512  # tokens per forward pass; longer feeds are split


@dataclass
class _Row:
    slot: int  # this row's line in the live matrix
    ids: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)  # cache column of each cached id
    logits: Tensor | None = None  # next-token logits after the last cached id
    counters: EngineCounters = field(default_factory=EngineCounters)


@dataclass
class _Pack:
    """One forward's packed inputs: ids, positions, and the row of each token."""

    rows: list[int]  # row handle of each token
    ids: list[int]
    positions: list[int]
    last: dict[int, int]  # row -> index of its last token in this pack


class TransformersEngine:
    """Rows of one causal LM packed into one KV cache (see the module docstring)."""

    capabilities: Capabilities = ENGINES["transformers"].capabilities

    def __init__(self, lm: LoadedModel, *, compact_min: int = 64) -> None:
        import torch

        self.lm = lm
        self.device = lm.device
        if self.device.type == "cpu":
            use_onednn_linears(lm.model)
        self.compact_min = compact_min
        self.counters = EngineCounters()
        self._rows: dict[int, _Row] = {}
        self._free: list[int] = []  # slots of closed rows
        self._next = 0
        self._cache_kw = _cache_keyword(lm.model)
        self.cache: DynamicCache | None
        self.cache, self._layers = _new_cache(lm)
        self.live = torch.zeros((0, 0), dtype=torch.bool, device=self.device)  # slot x column
        self.pinned = torch.zeros((0,), dtype=torch.bool, device=self.device)  # the prefix
        self._prefix_ids: list[int] = []
        self._prefix_cols: list[int] = []

    # ---- rows -----------------------------------------------------------------
    def open_row(self) -> int:
        import torch

        if self.cache is None:
            raise RuntimeError("the transformers engine is closed")
        handle = self._next
        self._next += 1
        if self._free:
            slot = self._free.pop()
        else:
            slot = int(self.live.shape[0])
            blank = torch.zeros((1, self.width), dtype=torch.bool, device=self.device)
            self.live = torch.cat([self.live, blank])
        self._rows[handle] = _Row(slot=slot)
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
        r = self._rows.pop(row)
        self.live[r.slot] = False
        self._free.append(r.slot)
        self._trim_tail()

    def copy_prefix(self, source: int, target: int, length: int) -> None:
        """Empty row `target` sees `source`'s first `length` ids' columns (none is computed)."""
        src, dst = self._rows[source], self._rows[target]
        if dst.ids:
            raise ValueError("copy_prefix fills an empty row")
        dst.ids = src.ids[:length]
        dst.cols = src.cols[: min(length, len(src.cols))]
        self.live[dst.slot, dst.cols] = True
        dst.counters.tokens_fed += len(dst.cols)  # in the row's context as if fed

    def cache_bytes_per_id(self) -> int:
        """Keys and values of every layer for one column, from the model's config."""
        config = self.lm.model.config
        layers = int(getattr(config, "num_hidden_layers", 1))
        heads = int(getattr(config, "num_attention_heads", 1))
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // heads
        size = next(self.lm.model.parameters()).element_size()
        return 2 * layers * kv_heads * int(head_dim) * size

    def cache_capacity(self) -> int | None:
        """Columns grow with the rows: memory is the only bound."""
        return None

    def context_window(self) -> int | None:
        """The model's positions (`max_position_embeddings` of its config)."""
        positions = getattr(self.lm.model.config, "max_position_embeddings", None)
        return positions if isinstance(positions, int) and positions > 0 else None

    def close(self) -> None:
        """Drop the KV cache and every row (the weights belong to the LoadedModel)."""
        self._rows.clear()
        self.cache, self._layers = None, []
        self.live = self.live[:0, :0]
        self.pinned = self.pinned[:0]

    @property
    def width(self) -> int:
        """Columns in the cache (seen by some row or not)."""
        return int(self.pinned.shape[0])

    # ---- forward ----------------------------------------------------------------
    def forward(self, rows: Sequence[int]) -> dict[int, Tensor]:
        """Feed the listed rows' pending ids in one packed pass; logits per row."""
        fresh = [row for row in rows if not self._rows[row].cols]
        if not self._prefix_ids and first_shares([self._rows[r].ids for r in fresh], MIN_SHARED):
            self.forward(fresh[:1])  # its prompt is pinned first; the others share it
        for row in rows:
            r = self._rows[row]
            if len(r.ids) == len(r.cols) and r.logits is None:
                refeed_last(self, row)
            if not r.cols:
                self._start_from_prefix(r)
        pack = self._pack(rows)
        for start in range(0, len(pack.ids), CHUNK):
            self._run(pack, start, min(start + CHUNK, len(pack.ids)))
        if not self._prefix_ids:
            self._remember_prefix()
        self._maybe_compact()
        return {row: _logits(self._rows[row]) for row in rows}

    def _pack(self, rows: Sequence[int]) -> _Pack:
        pack = _Pack([], [], [], {})
        for row in rows:
            r = self._rows[row]
            pending = r.ids[len(r.cols) :]
            if not pending:
                continue
            start = len(r.cols)
            pack.rows.extend([row] * len(pending))
            pack.ids.extend(pending)
            pack.positions.extend(range(start, start + len(pending)))
            pack.last[row] = len(pack.ids) - 1
            r.counters.forward_passes += 1
            r.counters.tokens_fed += len(pending)
        return pack

    def _run(self, pack: _Pack, start: int, end: int) -> None:
        """One forward pass over pack[start:end]: append its columns, keep the rows' logits."""
        import torch

        dev, width, n = self.device, self.width, end - start
        slots = torch.tensor([self._rows[row].slot for row in pack.rows[start:end]], device=dev)
        keep = {row: i - start for row, i in pack.last.items() if start <= i < end}
        same_row = slots[:, None] == slots[None, :]
        causal = torch.ones((n, n), dtype=torch.bool, device=dev).tril()
        mask = torch.cat([self.live[slots], same_row & causal], dim=1)[None, None]
        positions = torch.tensor([pack.positions[start:end]], dtype=torch.long, device=dev)
        ids = torch.tensor([pack.ids[start:end]], dtype=torch.long, device=dev)
        picks = list(keep.values()) or [n - 1]
        logits = self._model(ids, positions, mask, torch.tensor(picks, device=dev))
        self.live = torch.cat(
            [self.live, torch.zeros((self.live.shape[0], n), dtype=torch.bool, device=dev)], dim=1
        )
        self.live[slots, torch.arange(width, width + n, device=dev)] = True
        self.pinned = torch.cat([self.pinned, torch.zeros(n, dtype=torch.bool, device=dev)])
        for i, row in enumerate(pack.rows[start:end]):
            self._rows[row].cols.append(width + i)
        for j, row in enumerate(keep):
            self._rows[row].logits = logits[j]
        self.counters.forward_passes += 1
        self.counters.tokens_fed += n

    def _model(self, ids: Tensor, positions: Tensor, mask: Tensor, picks: Tensor) -> Tensor:
        import torch

        with torch.inference_mode():
            out = self.lm.model(
                input_ids=ids,
                position_ids=positions,
                attention_mask=mask,
                use_cache=True,
                logits_to_keep=picks,
                **{self._cache_kw: self.cache},
            )
        return out.logits[0].float()

    # ---- a shared prefix ----------------------------------------------------------
    def _remember_prefix(self) -> None:
        """Pin the columns of the first row long enough to be worth sharing."""
        for r in self._rows.values():
            if len(r.cols) >= MIN_SHARED:
                self._prefix_ids = r.ids[: len(r.cols)]
                self._prefix_cols = list(r.cols)
                self.pinned[self._prefix_cols] = True
                return

    def _start_from_prefix(self, r: _Row) -> None:
        """A row with nothing cached sees the pinned prefix it shares (one id stays pending)."""
        shared = shared_prefix(r.ids, self._prefix_ids)
        if shared < MIN_SHARED:
            return
        r.cols = self._prefix_cols[:shared]
        self.live[r.slot, r.cols] = True
        r.counters.tokens_fed += shared  # in the row's context as if fed

    # ---- cache upkeep -------------------------------------------------------------
    def _used(self) -> Tensor:
        return self.live.any(dim=0) | self.pinned

    def compact(self) -> None:
        """Drop every column no row sees and no prefix pins; the rest keep their order."""
        import torch

        used = self._used()
        keep = used.nonzero().flatten()
        moved = torch.cumsum(used.long(), 0) - 1  # old column -> new column
        self._map_layers(lambda t: t.index_select(2, keep))
        self.live = self.live[:, keep]
        self.pinned = self.pinned[keep]
        table = moved.tolist()
        for r in self._rows.values():
            r.cols = [table[c] for c in r.cols]
        self._prefix_cols = [table[c] for c in self._prefix_cols]

    def _maybe_compact(self) -> None:
        used = int(self._used().sum())
        if self.width - used >= max(self.compact_min, used // 2):
            self.compact()

    def _trim_tail(self) -> None:
        """Crop trailing columns that no row sees."""
        if self.width == 0:
            return
        used = self._used().nonzero()
        keep = int(used[-1].item()) + 1 if used.numel() else 0
        if keep < self.width:
            self.live = self.live[:, :keep]
            self.pinned = self.pinned[:keep]
            self._map_layers(lambda t: t[:, :, :keep])

    def _map_layers(self, fn: Callable[[Tensor], Tensor]) -> None:
        """Replace every initialized layer's keys and values by `fn` of them."""
        for layer in self._layers:
            layer.replace(fn)


def _logits(row: _Row) -> Tensor:
    if row.logits is None:
        raise RuntimeError("a row was listed for a forward pass but got no logits")
    return row.logits


def _new_cache(lm: LoadedModel) -> tuple[DynamicCache, list[GrowingLayer]]:
    """A DynamicCache whose layers are growing buffers (growing.py), and those layers."""
    from transformers import DynamicCache

    from llmos_grammar.engines.growing import GrowingLayer

    cache = DynamicCache(config=lm.model.config)
    for layer in cache.layers:
        if type(layer).__name__ != "DynamicLayer":
            raise ModelError(
                f"{lm.name}: cache layers of type {type(layer).__name__} "
                "(sliding window) are not supported by the packed-cache engine"
            )
    layers = [GrowingLayer() for _ in cache.layers]
    cache.layers = list(layers)
    return cache, layers


def _cache_keyword(model: Any) -> str:
    """`cache` in recent transformers, `past_key_values` before."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def load_transformers(ref: ModelRef, engine_args: Mapping[str, str]) -> LoadedModel:
    """The registry's loader: the model and tokenizer in torch (no engine arguments)."""
    return load_model(ref)


def start_engine(lm: LoadedModel, prefix: Sequence[int]) -> TransformersEngine:
    """The registry's starter. The first prompt long enough is pinned as it comes, so the
    prompt every row starts with (`prefix`) needs no computing ahead."""
    return TransformersEngine(lm)


__all__ = ["TransformersEngine", "load_transformers", "start_engine"]
