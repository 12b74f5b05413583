"""llguidance behind the grammar stage: cached byte-level matchers, accepts."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from llmos_grammar.errors import GrammarError
from llmos_grammar.grammar.translate import bare, lark_text
from llmos_grammar.grammar.validate import validate
from llmos_grammar.ir import GrammarSource

if TYPE_CHECKING:
    from llguidance import LLMatcher, LLTokenizer


@functools.cache
def byte_tokenizer() -> LLTokenizer:
    """llguidance's byte-level tokenizer: token i < 256 is byte i; no model needed."""
    import llguidance as llg

    return llg.LLTokenizer("byte")


@functools.lru_cache(maxsize=64)
def template_matcher(source: GrammarSource, close: str | None = None) -> LLMatcher:
    """A fresh matcher for `source` (a `bare` one) followed by `close`, compiled once;
    callers use deep copies."""
    return compile_matcher(source, close)


def compile_matcher(source: GrammarSource, close: str | None = None) -> LLMatcher:
    """A new byte-level matcher for `source` followed by `close` (the Lark text of
    `translate.lark_text`); GrammarError when it does not compile."""
    import llguidance as llg

    compiled = llg.LLMatcher(byte_tokenizer(), lark_text(source, close), log_level=0)
    if compiled.is_error():
        raise GrammarError(f"grammar does not compile: {compiled.get_error()}")
    return compiled


def matcher(source: GrammarSource) -> LLMatcher:
    """A fresh byte-level matcher for `source`; GrammarError (located, with all diagnostics)
    when it does not compile."""
    try:
        return template_matcher(bare(source)).deep_copy()
    except GrammarError as exc:
        found = validate(source)
        errors = [d for d in found if d.severity == "error"]
        if not errors:
            raise GrammarError(exc.message, source.location) from None
        first = errors[0]
        raise GrammarError(first.message, first.location, diagnostics=found) from None


def consume(state: LLMatcher, data: bytes) -> bool:
    """Feed `data` byte by byte; True when every byte was allowed."""
    return state.try_consume_tokens(list(data)) == len(data) and not state.is_error()


def accepts(source: GrammarSource, text: str) -> bool:
    """Whether the whole of `text` is a string of the grammar's language (raises GrammarError if
    the grammar does not compile)."""
    state = matcher(source)
    return consume(state, text.encode("utf-8")) and state.is_accepting()


def allowed(state: LLMatcher, wanted: bytes) -> list[int]:
    """The bytes of `wanted` the matcher allows next (byte tokenizer: token id = byte)."""
    mask = state.compute_bitmask()
    return [b for b in wanted if mask[b // 8] >> (b % 8) & 1]
