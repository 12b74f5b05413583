"""A state's constraint in the form vLLM's guidance backend takes: one Lark text.

The text is the one our own llguidance matchers compile (`grammar.translate.lark_text`), so
the server enforces exactly what the segment replay checks.
"""

from __future__ import annotations

from llmos_grammar.grammar.translate import lark_text
from llmos_grammar.ir import GrammarSource


def lark_for_vllm(source: GrammarSource, close: str | None) -> str:
    """Lark text accepting `source` followed by the literal `close` (when given)."""
    return lark_text(source, close)
