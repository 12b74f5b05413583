"""Token-level constraints compiled from grammar sources (llguidance backend)."""

from __future__ import annotations

from llmos_grammar.constraints.llguidance_backend import (
    CompiledConstraint,
    LLGuidanceConstraint,
    top_level_grammar,
)
from llmos_grammar.constraints.mask import MaskBuffer
from llmos_grammar.constraints.tokens import TokenTable, build_table

__all__ = [
    "CompiledConstraint",
    "LLGuidanceConstraint",
    "MaskBuffer",
    "TokenTable",
    "build_table",
    "top_level_grammar",
]
