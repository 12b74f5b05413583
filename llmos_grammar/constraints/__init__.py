"""Token-level constraints behind one interface: llguidance (Lark, regex, JSON schema) and
Outlines (outlines-core: regex and JSON schema), chosen by name or by `auto`."""

from __future__ import annotations

from llmos_grammar.constraints.backend import (
    Backend,
    BackendName,
    Compiled,
    Matcher,
    MatcherError,
)
from llmos_grammar.constraints.choose import Enforcement, compile_constraint, plan
from llmos_grammar.constraints.llguidance_backend import CompiledConstraint
from llmos_grammar.constraints.mask import MaskBuffer, apply_mask
from llmos_grammar.constraints.registry import BACKENDS, byte_compiled, fill_masks
from llmos_grammar.constraints.tokens import TokenTable, build_table, byte_table

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendName",
    "Compiled",
    "CompiledConstraint",
    "Enforcement",
    "MaskBuffer",
    "Matcher",
    "MatcherError",
    "TokenTable",
    "apply_mask",
    "build_table",
    "byte_compiled",
    "byte_table",
    "compile_constraint",
    "fill_masks",
    "plan",
]
