"""Which engine runs a model: `auto`, `transformers` or `llamacpp`, and loading for it."""

from __future__ import annotations

import importlib.util
from typing import Any, Literal, get_args

from llmos_grammar.errors import ModelError
from llmos_grammar.ir import ModelRef

EngineName = Literal["auto", "transformers", "llamacpp"]
ENGINES: tuple[EngineName, ...] = get_args(EngineName)


def llamacpp_available() -> bool:
    """Whether `llama_cpp` (the llama-cpp-python package) can be imported."""
    return importlib.util.find_spec("llama_cpp") is not None


def choose(requested: str, ref: ModelRef, *, adapter: bool = False) -> str:
    """The engine for `ref`: `auto` is llamacpp for a GGUF model when llama_cpp imports,
    and transformers otherwise or with a (torch) LoRA adapter."""
    from llmos_grammar.models import resolve

    if requested not in ENGINES:
        raise ModelError(f"unknown engine {requested!r}; use one of: {', '.join(ENGINES)}")
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


def load_for(engine: str, ref: ModelRef) -> Any:
    """The LoadedModel of `ref` for a chosen engine."""
    if engine == "llamacpp":
        from llmos_grammar.engines.llamacpp import load_llamacpp

        return load_llamacpp(ref)
    from llmos_grammar.models import load_model

    return load_model(ref)
