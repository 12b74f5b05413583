"""A llama.cpp engine: the GGUF runs natively; masks, sampling and the state machine stay ours.

Only the forward pass is llama.cpp's (`llama-cpp-python`'s low-level API). Rows
are llama.cpp sequences (`seq_id`) in one context with a unified KV cache: one
`llama_decode` feeds every listed row's pending ids at their own positions, so
rows of any length need no padding and no mask. Truncating a row removes its
cells (`llama_memory_seq_rm`); a closed row's sequence id is reused. The first
prompt's cells are kept in a sequence of their own; a joining row that starts
with the same ids (a system prompt) shares those cells (`llama_memory_seq_cp`)
instead of computing them again.

Numerics: llama.cpp's kernels are not batch-invariant. A row's logits are
exactly those of a re-prefill when it is alone in the context, but move by
~0.5 (default model) once other rows hold cells or share the decode call (the
kernels follow the call's token count), so greedy rows of a batch can part from
their single-sequence runs. The transformers engine matches them up to float rounding.
On CPUs with AMX tiles the extra (AMX) buffer types are left off: their Q4_1
matmul crashes.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmos_grammar.engines.base import Capabilities, EngineCounters
from llmos_grammar.engines.prefix_store import PrefixStore
from llmos_grammar.engines.registry import ENGINES
from llmos_grammar.engines.rows import first_shares, refeed_last, shared_prefix
from llmos_grammar.errors import ModelError
from llmos_grammar.ir import ModelRef

if TYPE_CHECKING:
    from torch import Tensor

    from llmos_grammar.models import LoadedModel

N_BATCH = 512  # tokens per llama_decode call; longer feeds are split
N_SEQ_MAX = 63  # rows one engine holds at once (plus the shared prefix's sequence)
N_CTX = 32768  # KV cells shared by all rows (about 23 KB each for the default model)
MIN_SHARED = 16  # shortest prompt prefix worth sharing between rows instead of recomputing

_init = threading.Lock()
_backend_ready = False


def _quiet_backend() -> None:
    """Initialize llama.cpp once per process with its log silenced (the run's output is ours)."""
    global _backend_ready, _LOG_CALLBACK
    import llama_cpp as lc

    with _init:
        if _backend_ready:
            return
        lc.llama_backend_init()
        _LOG_CALLBACK = lc.llama_log_callback(lambda level, text, user: None)
        lc.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        _backend_ready = True


_LOG_CALLBACK: Any = None  # kept alive: llama.cpp holds a pointer to it


def _cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Linux: the `amx_tile` flag of /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            return any(line.startswith("flags") and " amx_tile" in line for line in info)
    except OSError:
        return False


class LlamaCppModel:
    """A GGUF loaded by llama.cpp: weights only; contexts are made per engine."""

    def __init__(self, path: str, threads: int | None = None, lora: str | None = None) -> None:
        import llama_cpp as lc

        _quiet_backend()
        params = lc.llama_model_default_params()
        # ggml's AMX kernels (picked through the extra buffer types on CPUs with AMX tiles)
        # crash in ggml_backend_amx_mul_mat on the default model's Q4_1 tensors.
        params.use_extra_bufts = not _cpu_has_amx()
        self.path = path
        self._native = _Weights(lc.llama_model_load_from_file(path.encode(), params))
        if not self.handle:
            raise ModelError(f"llama.cpp cannot load {path}")
        self._free_native = weakref.finalize(self, self._native.free)
        vocab = lc.llama_model_get_vocab(self.handle)
        self.n_vocab = int(lc.llama_vocab_n_tokens(vocab))
        self.n_ctx_train = int(lc.llama_model_n_ctx_train(self.handle))
        self.eos_ids = frozenset(
            int(t) for t in (lc.llama_vocab_eos(vocab), lc.llama_vocab_eot(vocab)) if int(t) >= 0
        )
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self.threads = threads or cores or os.cpu_count() or 1
        self.engines: weakref.WeakSet[LlamaCppEngine] = weakref.WeakSet()  # open contexts
        self.lora = lora  # a GGUF LoRA adapter (llmos export), applied in every context
        self.adapter = _load_lora(self, lora) if lora else None  # its native pointer

    def prepare_context(self) -> None:
        """Create the first engine's context now: while a loading thread does this (C code,
        no GIL held), Python goes on loading the tokenizer."""
        if self._native.spare is None:
            self._native.spare = _new_context(self, N_CTX, N_SEQ_MAX)

    def take_context(self, n_ctx: int, rows: int) -> Any:
        """A context of `n_ctx` cells for `rows` rows: the prepared one when it fits."""
        import llama_cpp as lc

        spare, self._native.spare = self._native.spare, None
        if spare is not None and (n_ctx, rows) == (N_CTX, N_SEQ_MAX):
            return spare
        if spare is not None:
            lc.llama_free(spare)
        return _new_context(self, n_ctx, rows)

    @property
    def handle(self) -> Any:
        """The native model (None once closed)."""
        return self._native.handle

    def close(self) -> None:
        """Close every engine's context over these weights, then free the weights (weights
        never closed are freed when the model is garbage-collected)."""
        for engine in list(self.engines):
            engine.close()
        self._free_native()


@dataclass
class _Weights:
    """The native pointers of a model: freed once, by `close` or by the garbage collector."""

    handle: Any
    spare: Any = None  # a context made ahead of the first engine (prepare_context)

    def free(self) -> None:
        import llama_cpp as lc

        if self.spare is not None:
            lc.llama_free(self.spare)
            self.spare = None
        if self.handle:
            lc.llama_model_free(self.handle)
            self.handle = None


def _new_context(model: LlamaCppModel, n_ctx: int, rows: int) -> Any:
    """A llama.cpp context of `n_ctx` unified cells for `rows` rows plus the shared prefix."""
    import llama_cpp as lc

    params = lc.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = N_BATCH
    params.n_ubatch = N_BATCH
    params.n_seq_max = rows + 1  # the last sequence holds the shared prefix
    params.kv_unified = True  # rows share every cell; none is capped at n_ctx / rows
    params.n_threads = model.threads
    params.n_threads_batch = model.threads
    # Without flash attention, appending after an action gives exactly the logits of a
    # re-prefill (with it, ~0.5 apart on the default model: the tiles follow the split).
    params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = lc.llama_init_from_model(model.handle, params)
    if not ctx:
        raise ModelError(f"llama.cpp cannot create a context of {n_ctx} cells for {model.path}")
    if model.adapter is not None:
        adapters = (lc.llama_adapter_lora_p_ctypes * 1)(model.adapter)
        if lc.llama_set_adapters_lora(ctx, adapters, 1, (ctypes.c_float * 1)(1.0)) != 0:
            lc.llama_free(ctx)
            raise ModelError(f"llama.cpp cannot apply the LoRA adapter {model.lora}")
    return ctx


def _load_lora(model: LlamaCppModel, path: str) -> Any:
    """The GGUF LoRA adapter at `path` on `model`'s weights (freed with them); the weights
    are closed and ModelError raised when llama.cpp refuses it (its reason is in its log)."""
    import llama_cpp as lc

    adapter = lc.llama_adapter_lora_init(model.handle, path.encode())
    if not adapter:
        model.close()
        raise ModelError(
            f"llama.cpp cannot load the LoRA adapter {path} onto {model.path} "
            "(write it for this model with: llmos export ADAPTER_DIR -o OUT.gguf)"
        )
    return adapter


def _load_native(path: str, lora: str | None = None) -> LlamaCppModel:
    """The model (with its LoRA adapter) and its first context (run in a loading thread)."""
    native = LlamaCppModel(path, lora=lora)
    try:
        native.prepare_context()
    except ModelError:
        native.close()
        raise
    return native


@dataclass
class _Row:
    seq: int
    ids: list[int] = field(default_factory=list)
    cached: int = 0
    logits: Tensor | None = None
    counters: EngineCounters = field(default_factory=EngineCounters)


class LlamaCppEngine:
    """Rows of one llama.cpp model in one context (see the module docstring).

    `close()` (or the model's) frees the context; one never closed is freed when
    the engine is garbage-collected.
    """

    capabilities: Capabilities = ENGINES["llamacpp"].capabilities

    def __init__(self, model: LlamaCppModel, *, n_ctx: int = N_CTX, rows: int = N_SEQ_MAX):
        import llama_cpp as lc

        if not model.handle:
            raise ModelError(f"the llama.cpp model {model.path} is closed")
        self.model = model
        self.ctx = model.take_context(n_ctx, rows)
        self.memory = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(N_BATCH, 0, 1)
        self._free_native = weakref.finalize(self, _free_context, self.ctx, self.batch)
        model.engines.add(self)
        self.n_ctx = n_ctx
        self.counters = EngineCounters()
        self._rows: dict[int, _Row] = {}
        self._prefix_seq = rows  # holds the first prompt's cells, shared by joining rows
        self._prefix_ids: list[int] = []
        self._pinned: list[int] = []  # the prompt before any task (pin_prefix)
        self._store: PrefixStore | None = None
        self._free = list(range(rows - 1, -1, -1))  # sequence ids not in use
        self._next = 0

    def pin_prefix(self, ids: Sequence[int], store: PrefixStore | None = None) -> None:
        """Rows will start with `ids` (a spec's prompt before the task): the first row that
        does has them computed alone, once, and kept in the shared prefix; with a store,
        read from disk when an earlier process computed them. Computed alone, a row's
        logits are the same whether its prefix came from disk or not."""
        if len(ids) >= MIN_SHARED and not self._prefix_ids:
            self._pinned = [int(t) for t in ids]
            self._store = store

    # ---- rows -----------------------------------------------------------------
    def open_row(self) -> int:
        if not self.ctx:
            raise RuntimeError("the llama.cpp engine is closed")
        if not self._free:
            raise ModelError(f"the llama.cpp engine holds at most {self._prefix_seq} rows at once")
        handle = self._next
        self._next += 1
        self._rows[handle] = _Row(seq=self._free.pop())
        return handle

    def append(self, row: int, tokens: Sequence[int]) -> None:
        self._rows[row].ids.extend(int(t) for t in tokens)

    def truncate(self, row: int, length: int) -> None:
        import llama_cpp as lc

        r = self._rows[row]
        del r.ids[length:]
        if r.cached > length:
            lc.llama_memory_seq_rm(self.memory, r.seq, length, -1)
            r.cached = length
            r.logits = None

    def ids(self, row: int) -> list[int]:
        return self._rows[row].ids

    def cached(self, row: int) -> int:
        return self._rows[row].cached

    def row_counters(self, row: int) -> EngineCounters:
        return self._rows[row].counters

    def close_row(self, row: int) -> None:
        import llama_cpp as lc

        r = self._rows.pop(row)
        lc.llama_memory_seq_rm(self.memory, r.seq, -1, -1)
        self._free.append(r.seq)

    def copy_prefix(self, source: int, target: int, length: int) -> None:
        """Empty row `target` shares `source`'s cells of its first `length` ids
        (`llama_memory_seq_cp`: nothing is computed)."""
        import llama_cpp as lc

        src, dst = self._rows[source], self._rows[target]
        if dst.ids:
            raise ValueError("copy_prefix fills an empty row")
        dst.ids = src.ids[:length]
        dst.cached = min(length, src.cached)
        if dst.cached:
            lc.llama_memory_seq_cp(self.memory, src.seq, dst.seq, 0, dst.cached)
        dst.counters.tokens_fed += dst.cached  # in the row's context as if fed

    def cache_bytes_per_id(self) -> int:
        """Keys and values of every layer for one cell (f16), from the model's shape."""
        import llama_cpp as lc

        handle = self.model.handle
        layers = int(lc.llama_model_n_layer(handle))
        heads = max(1, int(lc.llama_model_n_head(handle)))
        kv_heads = int(lc.llama_model_n_head_kv(handle)) or heads
        head_dim = int(lc.llama_model_n_embd(handle)) // heads
        return 2 * layers * kv_heads * head_dim * 2

    def cache_capacity(self) -> int:
        """The context's cells, shared by every row."""
        return self.n_ctx

    # ---- forward ----------------------------------------------------------------
    def forward(self, rows: Sequence[int]) -> dict[int, Tensor]:
        """Feed the listed rows' pending ids (split into calls of N_BATCH); logits per row."""
        fresh = [row for row in rows if self._rows[row].cached == 0]
        if self._pinned and not self._prefix_ids and any(map(self._starts_pinned, fresh)):
            self._fill_pinned()
        if not self._prefix_ids and first_shares([self._rows[r].ids for r in fresh], MIN_SHARED):
            self.forward(fresh[:1])  # its prompt is kept first; the others share it
        feed: list[tuple[int, int, int]] = []  # (row, token, position)
        for row in rows:
            r = self._rows[row]
            if r.cached == len(r.ids) and r.logits is None:
                refeed_last(self, row)
            if r.cached == 0:
                self._start_from_prefix(r)
            feed.extend((row, r.ids[p], p) for p in range(r.cached, len(r.ids)))
        self._decode_all(feed)
        if not self._prefix_ids:
            self._remember_prefix()
        return {row: _logits(self._rows[row]) for row in rows}

    # ---- a shared prefix (a system prompt, say) ------------------------------------
    def _remember_prefix(self) -> None:
        """Keep the cells of the first prompt long enough to share in a sequence of its own."""
        import llama_cpp as lc

        for r in self._rows.values():
            if r.cached >= MIN_SHARED:
                lc.llama_memory_seq_cp(self.memory, r.seq, self._prefix_seq, 0, r.cached)
                self._prefix_ids = r.ids[: r.cached]
                return

    def _starts_pinned(self, row: int) -> bool:
        ids, n = self._rows[row].ids, len(self._pinned)
        return len(ids) > n and ids[:n] == self._pinned

    def _fill_pinned(self) -> None:
        """The pinned ids in the prefix's sequence: from the store, else computed alone."""
        import llama_cpp as lc

        ids, seq, store = self._pinned, self._prefix_seq, self._store
        data = store.load(ids) if store is not None else None
        if store is not None and data is not None:
            source = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            if lc.llama_state_seq_set_data(self.ctx, source, len(data), seq) == len(data):
                self._prefix_ids = list(ids)
                return
            lc.llama_memory_seq_rm(self.memory, seq, -1, -1)
            store.drop(ids)
        self._rows[-1] = _Row(seq=seq, ids=list(ids))  # a row of its own while it decodes
        try:
            self._decode_all([(-1, token, position) for position, token in enumerate(ids)])
        finally:
            del self._rows[-1]
        self._prefix_ids = list(ids)
        if store is not None:
            size = lc.llama_state_seq_get_size(self.ctx, seq)
            target = (ctypes.c_uint8 * size)()
            if lc.llama_state_seq_get_data(self.ctx, target, size, seq) == size:
                store.save(ids, bytes(target))

    def _start_from_prefix(self, r: _Row) -> None:
        """A row with nothing cached shares the prefix's cells (at least one id stays pending)."""
        import llama_cpp as lc

        shared = shared_prefix(r.ids, self._prefix_ids)
        if shared >= MIN_SHARED:
            lc.llama_memory_seq_cp(self.memory, self._prefix_seq, r.seq, 0, shared)
            r.cached = shared
            r.counters.tokens_fed += shared  # in the row's context as if fed

    def _decode_all(self, feed: list[tuple[int, int, int]]) -> None:
        """Decode (row, token, position) items in calls of at most N_BATCH."""
        for start in range(0, len(feed), N_BATCH):
            self._decode(feed[start : start + N_BATCH])

    def _decode(self, items: list[tuple[int, int, int]]) -> None:
        import llama_cpp as lc
        import numpy as np
        import torch

        batch = self.batch
        last: dict[int, int] = {}
        for i, (row, token, position) in enumerate(items):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = self._rows[row].seq
            batch.logits[i] = False
            last[row] = i
        for i in last.values():
            batch.logits[i] = True
        batch.n_tokens = len(items)
        status = lc.llama_decode(self.ctx, batch)
        if status != 0:
            used = sum(r.cached for r in self._rows.values())
            raise ModelError(
                f"llama.cpp decode failed (status {status}): {used + len(items)} tokens "
                f"in a context of {self.n_ctx} cells"
            )
        n_vocab = self.model.n_vocab
        for row, i in last.items():
            pointer = lc.llama_get_logits_ith(self.ctx, i)
            values = np.ctypeslib.as_array(pointer, shape=(n_vocab,))
            self._rows[row].logits = torch.from_numpy(values.copy())
        for row in last:
            fed = sum(1 for item in items if item[0] == row)
            r = self._rows[row]
            r.cached += fed
            r.counters.forward_passes += 1
            r.counters.tokens_fed += fed
        self.counters.forward_passes += 1
        self.counters.tokens_fed += len(items)

    # ---- lifetime ---------------------------------------------------------------
    def context_window(self) -> int:
        """The context's cells (shared by every row)."""
        return self.n_ctx

    def close(self) -> None:
        """Free the context and its batch now (the weights stay: they are the model's)."""
        self._free_native()
        self.ctx = None
        self._rows.clear()


def _logits(row: _Row) -> Tensor:
    if row.logits is None:
        raise RuntimeError("a row was listed for a forward pass but got no logits")
    return row.logits


def _free_context(ctx: Any, batch: Any) -> None:
    import llama_cpp as lc

    lc.llama_batch_free(batch)
    lc.llama_free(ctx)


__all__ = ["LlamaCppEngine", "LlamaCppModel", "load_llamacpp", "prefix_store", "start_engine"]


def prefix_store(model: LlamaCppModel) -> PrefixStore | None:
    """Where prompt-prefix states of `model` are kept between processes (None: nowhere).
    The key holds what shapes the state: the file, llama.cpp's version, the threads and
    the LoRA adapter (its path, size and time)."""
    import llama_cpp as lc

    lora: list[object] = []
    if model.lora:
        try:
            info = os.stat(model.lora)
        except OSError:
            return None
        lora = [os.path.abspath(model.lora), info.st_size, info.st_mtime_ns]
    return PrefixStore.for_model(model.path, lc.__version__, model.threads, N_BATCH, *lora)


def load_llamacpp(
    ref: ModelRef, engine_args: Mapping[str, str] | None = None, lora: str | None = None
) -> LoadedModel:
    """A LoadedModel whose `model` is the GGUF in llama.cpp; tokenizer and token table are ours.
    `lora`: a GGUF LoRA adapter (from llmos export) that every context applies.
    Closing the LoadedModel closes the weights and every engine's context over them."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from llmos_grammar.constraints.tokens import build_table
    from llmos_grammar.models import LoadedModel, load_tokenizer, resolve

    folder, gguf = resolve(ref)
    if gguf is None:
        raise ModelError(
            f"the llamacpp engine runs GGUF models; {ref.name!r} is not one "
            "(use --engine transformers)"
        )
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmos-load")
    # llama.cpp loads the weights and makes the first context without the GIL, on the
    # other core, while this thread imports transformers and reads the tokenizer
    loading = pool.submit(_load_native, str(Path(folder) / gguf), lora)
    import torch

    tokenizer = load_tokenizer(ref)
    native = loading.result()
    eos = set(native.eos_ids)
    if tokenizer.eos_token_id is not None:
        eos.add(int(tokenizer.eos_token_id))
    table = pool.submit(build_table, tokenizer, native.n_vocab, sorted(eos))
    pool.shutdown(wait=False)
    return LoadedModel(
        native,
        tokenizer,
        torch.device("cpu"),
        native.n_vocab,
        frozenset(eos),
        f"{ref.name}+{Path(lora).stem}" if lora else ref.name,
        table_future=table,
        engine="llamacpp",
        closer=native.close,
    )


def start_engine(lm: LoadedModel, prefix: Sequence[int]) -> LlamaCppEngine:
    """The registry's starter: one context, its rows sharing `prefix` (the spec's prompt
    before the task: computed once, or read from the prefix store when an earlier process
    computed it)."""
    if not isinstance(lm.model, LlamaCppModel):
        raise TypeError(f"the llamacpp engine runs a LlamaCppModel, not {type(lm.model).__name__}")
    engine = LlamaCppEngine(lm.model)
    engine.pin_prefix(prefix, prefix_store(lm.model))
    return engine
