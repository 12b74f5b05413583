"""llguidance matchers for Lark, regex and JSON-schema constraints, optionally ended by a close."""

from __future__ import annotations

import json
from typing import Any

from llmos_grammar.constraints.tokens import TokenTable
from llmos_grammar.errors import GrammarError
from llmos_grammar.ir import GrammarSource


class MatcherError(Exception):
    """The matcher entered its error state; the decode loop turns this into a DecodeError."""


def _body_grammar(source: GrammarSource) -> dict[str, Any]:
    """The source as one llguidance grammar entry (a dict of the top-level JSON)."""
    import llguidance as llg

    if source.kind == "lark":
        return {"lark_grammar": source.text}
    if source.kind == "regex":
        text = llg.LLMatcher.grammar_from_regex(source.text)
    elif source.kind == "json_schema":
        text = llg.LLMatcher.grammar_from_json_schema(source.text)
    else:
        raise GrammarError(f"unknown constraint kind {source.kind!r}", source.location)
    entry = dict(json.loads(text)["grammars"][0])
    return {k: v for k, v in entry.items() if v is not None and k != "name"}


def top_level_grammar(source: GrammarSource, close: str | None) -> str:
    """The llguidance grammar JSON for `source`, followed by the literal `close` when given."""
    body = _body_grammar(source)
    if not close:
        return json.dumps({"grammars": [body]})
    body["name"] = "llmos_body"
    outer = {"lark_grammar": f"start: @llmos_body {json.dumps(close)}\n"}
    return json.dumps({"grammars": [outer, body]})


class LLGuidanceConstraint:
    """One matcher instance: mask, consume, forced tokens, acceptance."""

    def __init__(self, matcher: Any, name: str) -> None:
        self._matcher = matcher
        self.name = name

    @property
    def matcher(self) -> Any:
        """The llguidance LLMatcher (for batched mask computation)."""
        return self._matcher

    def fill_mask(self, bitmask: Any) -> None:
        """Write the allowed-token bitmask into a preallocated int32 torch tensor (1, words)."""
        row = bitmask[0]
        self._matcher.unsafe_compute_mask_ptr(row.data_ptr(), row.numel() * row.element_size())
        self._raise_if_error()

    def consume(self, tokens: list[int]) -> bool:
        """Advance over `tokens`; False (with `error` set) when the grammar rejects one."""
        ok = bool(self._matcher.consume_tokens(tokens))
        return ok and not self._matcher.is_error()

    def forced(self) -> list[int]:
        """Tokens the grammar forces next (possibly none)."""
        return list(self._matcher.compute_ff_tokens())

    def is_accepting(self) -> bool:
        return bool(self._matcher.is_accepting())

    def is_stopped(self) -> bool:
        return bool(self._matcher.is_stopped())

    @property
    def error(self) -> str:
        return str(self._matcher.get_error()) if self._matcher.is_error() else ""

    def _raise_if_error(self) -> None:
        if self._matcher.is_error():
            raise MatcherError(str(self._matcher.get_error()))


class CompiledConstraint:
    """A checked grammar bound to a tokenizer; `new()` gives a fresh matcher per state visit."""

    def __init__(self, source: GrammarSource, table: TokenTable, close: str | None, name: str):
        import llguidance as llg

        self.name = name
        self.grammar = top_level_grammar(source, close)
        is_error, messages = llg.LLMatcher.validate_grammar_with_warnings(self.grammar, table.llg)
        if is_error:
            raise GrammarError(f"state {name!r}: {'; '.join(messages)}", source.location)
        self._template = llg.LLMatcher(table.llg, self.grammar, log_level=0)
        if self._template.is_error():
            raise GrammarError(f"state {name!r}: {self._template.get_error()}", source.location)

    def new(self) -> LLGuidanceConstraint:
        return LLGuidanceConstraint(self._template.deep_copy(), self.name)
