"""Why a state's constraint accepts or rejects a text: the byte walk the decoder would make,
what the grammar allowed where it stopped (characters, the grammar's own lexeme names, the
JSON path), where triggers fire, and the same walk token by token (`tokenwalk`)."""

from __future__ import annotations

from llmos_grammar.constraints.explain.core import expect, explain, explainable
from llmos_grammar.constraints.explain.jsonview import to_json
from llmos_grammar.constraints.explain.render import render
from llmos_grammar.constraints.explain.report import (
    Expected,
    Explanation,
    TokenStep,
    TokenWalk,
    Verdict,
)

__all__ = [
    "Expected",
    "Explanation",
    "TokenStep",
    "TokenWalk",
    "Verdict",
    "expect",
    "explain",
    "explainable",
    "render",
    "to_json",
]
