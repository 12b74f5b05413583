"""A grammar source as llguidance's grammar JSON (no matcher, no tokenizer)."""

from __future__ import annotations

from llmos_grammar.ir import GrammarSource


def backend_grammar(source: GrammarSource) -> str:
    """The llguidance grammar for `source` (raises ValueError on JSON that is not an object)."""
    import llguidance as llg

    if source.kind == "lark":
        return str(llg.LLMatcher.grammar_from_lark(source.text))
    if source.kind == "regex":
        return str(llg.LLMatcher.grammar_from_regex(source.text))
    if source.kind == "json_schema":
        return str(llg.LLMatcher.grammar_from_json_schema(source.text))
    raise ValueError(f"unknown grammar kind {source.kind!r}")
