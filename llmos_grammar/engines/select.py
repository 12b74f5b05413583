"""Which engine runs a model: `auto`, `transformers`, `llamacpp` or `vllm`, and loading for it."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any, Literal, get_args

from llmos_grammar.errors import ModelError
from llmos_grammar.ir import ModelRef

EngineName = Literal["auto", "transformers", "llamacpp", "vllm"]
ENGINES: tuple[EngineName, ...] = get_args(EngineName)


def llamacpp_available() -> bool:
    """Whether `llama_cpp` (the llama-cpp-python package) can be imported."""
    return importlib.util.find_spec("llama_cpp") is not None


def choose(
    requested: str,
    ref: ModelRef,
    *,
    adapter: bool = False,
    engine_args: Mapping[str, str] | None = None,
) -> str:
    """The engine for `ref`: `auto` is llamacpp for a GGUF model when llama_cpp imports,
    and transformers otherwise or with a (torch) LoRA adapter. `vllm` only when asked
    for; engine arguments are vLLM's, so other engines refuse them."""
    from llmos_grammar.models import resolve

    if requested not in ENGINES:
        raise ModelError(f"unknown engine {requested!r}; use one of: {', '.join(ENGINES)}")
    if requested == "vllm":
        if adapter:
            raise ModelError("LoRA adapters run on the transformers engine (--engine transformers)")
        return "vllm"
    if engine_args:
        names = ", ".join(sorted(engine_args))
        raise ModelError(f"engine arguments ({names}) are for --engine vllm only")
    if requested == "llamacpp":
        if adapter:
            raise ModelError("LoRA adapters run on the transformers engine (--engine transformers)")
        if not llamacpp_available():
            raise ModelError(
                "the llamacpp engine needs llama-cpp-python: pip install llama-cpp-python"
            )
        return "llamacpp"
    if requested == "transformers" or adapter:
        return "transformers"
    _, gguf = resolve(ref)
    return "llamacpp" if gguf is not None and llamacpp_available() else "transformers"


def load_for(engine: str, ref: ModelRef, engine_args: Mapping[str, str] | None = None) -> Any:
    """The LoadedModel of `ref` for a chosen engine."""
    if engine == "vllm":
        from llmos_grammar.engines.vllm import load_vllm

        return load_vllm(ref, engine_args or {})
    if engine == "llamacpp":
        from llmos_grammar.engines.llamacpp import load_llamacpp

        return load_llamacpp(ref)
    from llmos_grammar.models import load_model

    return load_model(ref)
