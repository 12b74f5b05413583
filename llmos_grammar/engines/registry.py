"""The engine registry: one entry per engine, with its capabilities and how it loads and starts.

Entries name their functions as "module:function", so that looking an engine
up (choosing one, asking what it can do) imports no engine code. Adding an
engine is one module plus one entry here (or `register_engine` from outside).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from llmos_grammar.engines.base import Capabilities, Engine
from llmos_grammar.errors import ModelError

if TYPE_CHECKING:
    from llmos_grammar.ir import ModelRef
    from llmos_grammar.models import LoadedModel

# (model reference, engine arguments) -> the model loaded for this engine
Loader = Callable[["ModelRef", Mapping[str, str]], "LoadedModel"]
# (loaded model, the ids every row starts with) -> a new engine over the model
Starter = Callable[["LoadedModel", Sequence[int]], Engine]


@dataclass(frozen=True)
class EngineEntry:
    """A registered engine.

    `load` and `start` are "module:function" (see `Loader` and `Starter`).
    `requires`: a module that must import for the engine to run, and `install`
    what to do when it does not. `auto`: which models `--engine auto` gives this
    engine ("gguf" files, "any" model, or None: only when asked for by name);
    auto takes the first entry, in registry order, that fits and can run.
    """

    name: str
    capabilities: Capabilities
    load: str
    start: str
    requires: str | None = None
    install: str = ""
    auto: Literal["gguf", "any"] | None = None

    def loader(self) -> Loader:
        return cast(Loader, _resolve(self.load))

    def starter(self) -> Starter:
        return cast(Starter, _resolve(self.start))

    def missing(self) -> str | None:
        """Why this engine cannot run in this environment; None when it can."""
        if self.requires is None or importlib.util.find_spec(self.requires) is not None:
            return None
        return f"the {self.name} engine needs the module {self.requires!r}: {self.install}"


def _resolve(target: str) -> Callable[..., object]:
    module, _, name = target.partition(":")
    function: Callable[..., object] = getattr(importlib.import_module(module), name)
    return function


_PKG = "llmos_grammar.engines"
ENGINES: dict[str, EngineEntry] = {
    "llamacpp": EngineEntry(
        "llamacpp",
        Capabilities("logits", shares_prefix=True, saves_state=True, batch_invariant=False),
        load=f"{_PKG}.llamacpp:load_llamacpp",
        start=f"{_PKG}.llamacpp:start_engine",
        requires="llama_cpp",
        install="pip install llama-cpp-python",
        auto="gguf",
    ),
    "transformers": EngineEntry(
        "transformers",
        Capabilities(
            "logits", shares_prefix=True, saves_state=False, batch_invariant=True, adapters=True
        ),
        load=f"{_PKG}.transformers:load_transformers",
        start=f"{_PKG}.transformers:start_engine",
        auto="any",
    ),
    "vllm": EngineEntry(
        "vllm",
        Capabilities(
            "segments",
            shares_prefix=True,
            saves_state=False,
            batch_invariant=False,
            takes_args=True,
        ),
        load=f"{_PKG}.vllm:load_vllm",
        start=f"{_PKG}.vllm.engine:start_engine",
    ),
}


def engine_entry(name: str) -> EngineEntry:
    """The registered engine `name`; ModelError naming the registered ones otherwise."""
    entry = ENGINES.get(name)
    if entry is None:
        raise ModelError(f"unknown engine {name!r}; use one of: auto, {', '.join(ENGINES)}")
    return entry


def register_engine(entry: EngineEntry) -> None:
    """Add an engine (a plugin, a test's); its name must be new."""
    if entry.name in ENGINES or entry.name == "auto":
        raise ValueError(f"an engine named {entry.name!r} is already registered")
    ENGINES[entry.name] = entry


def start_engine(lm: LoadedModel, prefix: Sequence[int] = ()) -> Engine:
    """A new engine over `lm` (the engine its `engine` names); rows will start with `prefix`."""
    return engine_entry(lm.engine).starter()(lm, prefix)
