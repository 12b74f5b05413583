"""The vLLM engine: segments of a run as requests to a vLLM OpenAI-compatible server.

Our process keeps its own pins (transformers, llguidance); vLLM runs in its own
environment (.venv-vllm, `bash setup.sh --vllm`) or on a server the user runs,
where its tensor, pipeline and data parallelism apply unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmos_grammar.errors import ModelError
from llmos_grammar.ir import ModelRef

if TYPE_CHECKING:
    from llmos_grammar.models import LoadedModel


def load_vllm(ref: ModelRef, engine_args: Mapping[str, str]) -> LoadedModel:
    """A LoadedModel whose `model` is a VLLMServer (started unless `url=` names one).

    Only the tokenizer loads here: constraints, triggers and healing need it;
    the weights live in the server. Closing the LoadedModel stops a server it started.
    """
    from llmos_grammar.engines.vllm.args import default_dtype, vllm_options
    from llmos_grammar.engines.vllm.server import connect
    from llmos_grammar.models import LoadedModel, hf_folder, load_tokenizer, pick_device

    options = vllm_options(engine_args)
    folder = hf_folder(ref)
    try:
        tokenizer = load_tokenizer(ref)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {ref.name!r}: {exc}") from exc
    vocab, eos = _vocab_and_eos(folder, tokenizer)
    server = connect(options, folder, default_dtype(ref.dtype))
    device = pick_device("cpu")
    return LoadedModel(
        server, tokenizer, device, vocab, eos, ref.name, engine="vllm", closer=server.close
    )


def _vocab_and_eos(folder: str, tokenizer: Any) -> tuple[int, frozenset[int]]:
    """The logits width and end-of-sequence ids from config.json (and the tokenizer)."""
    import json
    from pathlib import Path

    config_path = Path(folder) / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    vocab = int(config.get("vocab_size") or len(tokenizer))
    eos: set[int] = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    generation = Path(folder) / "generation_config.json"
    for source in (config, json.loads(generation.read_text()) if generation.is_file() else {}):
        raw = source.get("eos_token_id")
        eos.update([raw] if isinstance(raw, int) else list(raw or []))
    return vocab, frozenset(eos)


__all__ = ["load_vllm"]
