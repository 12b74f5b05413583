"""Which engine runs a model (`auto` or a registered name), and loading the model for it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from llmos_grammar.engines import registry
from llmos_grammar.engines.base import Capabilities
from llmos_grammar.engines.registry import EngineEntry, engine_entry
from llmos_grammar.errors import ModelError
from llmos_grammar.ir import ModelRef

if TYPE_CHECKING:
    from llmos_grammar.models import LoadedModel

# what --engine takes: auto, or an engine registered when the command line is built
ENGINES: tuple[str, ...] = ("auto", *registry.ENGINES)


def llamacpp_available() -> bool:
    """Whether `llama_cpp` (the llama-cpp-python package) can be imported."""
    return registry.ENGINES["llamacpp"].missing() is None


def choose(
    requested: str,
    ref: ModelRef,
    *,
    adapter: bool = False,
    engine_args: Mapping[str, str] | None = None,
) -> str:
    """The engine for `ref`: `auto` takes the first registered engine whose `auto` fits the
    model (a GGUF file, or any) and that can run here; with a (torch) LoRA adapter, only
    engines that run adapters. Engine arguments go only to engines that take them."""
    entry = _auto(ref, adapter) if requested == "auto" else engine_entry(requested)
    if adapter and not entry.capabilities.adapters:
        engines = _with(lambda c: c.adapters)
        raise ModelError(f"LoRA adapters run on the {engines} engine (--engine {engines})")
    if engine_args and not entry.capabilities.takes_args:
        names = ", ".join(sorted(engine_args))
        takers = _with(lambda c: c.takes_args)
        raise ModelError(f"engine arguments ({names}) are for --engine {takers} only")
    missing = entry.missing()
    if missing is not None:
        raise ModelError(missing)
    return entry.name


def _auto(ref: ModelRef, adapter: bool) -> EngineEntry:
    from llmos_grammar.models import resolve

    gguf = resolve(ref)[1] is not None
    for entry in registry.ENGINES.values():
        fits = entry.auto == "any" or (entry.auto == "gguf" and gguf)
        if fits and (entry.capabilities.adapters or not adapter) and entry.missing() is None:
            return entry
    raise ModelError(
        f"no engine can run {ref.name!r} here; install one of: {', '.join(registry.ENGINES)}"
    )


def _with(has: Callable[[Capabilities], bool]) -> str:
    """The registered engines whose capabilities `has` accepts (for messages)."""
    names = [n for n, e in registry.ENGINES.items() if has(e.capabilities)]
    return " or ".join(names) or "no"


def load_for(
    engine: str, ref: ModelRef, engine_args: Mapping[str, str] | None = None
) -> LoadedModel:
    """The LoadedModel of `ref` for a chosen engine."""
    return engine_entry(engine).loader()(ref, engine_args or {})
