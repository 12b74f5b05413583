"""The grammar stage: load, validate and test Lark/regex/JSON-schema sources; close conflicts.

Used by `llmos-check`, so nothing here imports torch; llguidance and lark load lazily.
"""

from __future__ import annotations

from pathlib import Path

from llmos_grammar.grammar.backend import accepts
from llmos_grammar.grammar.close import close_conflict
from llmos_grammar.grammar.source import load_source
from llmos_grammar.grammar.validate import validate
from llmos_grammar.paths import shipped

__all__ = ["accepts", "close_conflict", "grammars_dir", "load_source", "validate"]


def grammars_dir() -> Path:
    """The folder of grammars shipped with llmos-grammar (python.lark, sql_select.lark, ...)."""
    return shipped("grammars")
