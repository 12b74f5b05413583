"""The spec stage: YAML with locations, schemas, the one front end (`compile_spec`), checks.

`load` and `load_policy` (also `llmos_grammar.load`) are its entry points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos_grammar.spec.compile import compile_policy, compile_spec
    from llmos_grammar.spec.loader import load, load_policy

__all__ = ["compile_policy", "compile_spec", "load", "load_policy"]

_LAZY = {
    "load": "llmos_grammar.spec.loader",
    "load_policy": "llmos_grammar.spec.loader",
    "compile_spec": "llmos_grammar.spec.compile",
    "compile_policy": "llmos_grammar.spec.compile",
}


def __getattr__(name: str) -> object:
    # Importing one module of the stage (say yamldoc) must not compile grammars.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmos_grammar.spec' has no attribute {name!r}")
