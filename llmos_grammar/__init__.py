"""llmos-grammar: a state machine inside the decoder, driven by a YAML spec.

    from llmos_grammar import load, Runtime
    machine = load("examples/calculator/spec.yaml")
    result = Runtime(machine).run("What is 1000 minus 387?")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos_grammar.runtime import Runtime, Session
    from llmos_grammar.spec import load, load_policy

__version__ = "0.1.0"
__all__ = ["Runtime", "Session", "load", "load_policy", "__version__"]

_LAZY = {
    "load": ("llmos_grammar.spec", "load"),
    "load_policy": ("llmos_grammar.spec", "load_policy"),
    "Runtime": ("llmos_grammar.runtime", "Runtime"),
    "Session": ("llmos_grammar.runtime", "Session"),
}


def __getattr__(name: str) -> object:
    # Heavy modules (torch, transformers) load only when the runtime is asked for.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'llmos_grammar' has no attribute {name!r}")
