"""llguidance matchers for Lark, regex and JSON-schema constraints, optionally ended by a close."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmos_grammar.constraints.backend import BackendName, Matcher, MatcherError
from llmos_grammar.constraints.tokens import TokenTable
from llmos_grammar.errors import GrammarError
from llmos_grammar.grammar.translate import lark_text
from llmos_grammar.ir import GrammarSource

if TYPE_CHECKING:
    from llguidance import LLExecutor, LLMatcher


class LLGuidanceConstraint:
    """One llguidance matcher instance (the Matcher interface)."""

    backend: BackendName = "llguidance"

    def __init__(self, matcher: LLMatcher, name: str) -> None:
        self.matcher = matcher
        self.name = name

    def fill_mask(self, bitmask: Any, row: int = 0) -> None:
        target = bitmask[row]
        self.matcher.unsafe_compute_mask_ptr(
            target.data_ptr(), target.numel() * target.element_size()
        )
        self.raise_if_error()

    def consume(self, tokens: list[int]) -> bool:
        ok = bool(self.matcher.consume_tokens(tokens))
        return ok and not self.matcher.is_error()

    def forced(self) -> list[int]:
        return list(self.matcher.compute_ff_tokens())

    def rollback(self, n: int) -> None:
        if n and not self.matcher.rollback(n):
            raise MatcherError(f"cannot roll back {n} token(s): {self.matcher.get_error()}")

    def is_accepting(self) -> bool:
        return bool(self.matcher.is_accepting())

    def is_stopped(self) -> bool:
        return bool(self.matcher.is_stopped())

    @property
    def error(self) -> str:
        return str(self.matcher.get_error()) if self.matcher.is_error() else ""

    def raise_if_error(self) -> None:
        if self.matcher.is_error():
            raise MatcherError(str(self.matcher.get_error()))


class CompiledConstraint:
    """A checked grammar bound to a tokenizer; `new()` gives a fresh matcher per state visit."""

    backend: BackendName = "llguidance"

    def __init__(self, source: GrammarSource, table: TokenTable, close: str | None, name: str):
        import llguidance as llg

        self.name = name
        self.grammar = lark_text(source, close)
        is_error, messages = llg.LLMatcher.validate_grammar_with_warnings(self.grammar, table.llg)
        if is_error:
            raise GrammarError(f"state {name!r}: {'; '.join(messages)}", source.location)
        self._template = llg.LLMatcher(table.llg, self.grammar, log_level=0)
        if self._template.is_error():
            raise GrammarError(f"state {name!r}: {self._template.get_error()}", source.location)

    def new(self) -> LLGuidanceConstraint:
        return LLGuidanceConstraint(self._template.deep_copy(), self.name)


@functools.cache
def executor() -> LLExecutor:
    """One llguidance thread pool for parallel mask computation."""
    import llguidance as llg

    return llg.LLExecutor()


class LLGuidanceBackend:
    """llguidance: Lark, regex and JSON schema; masks of many rows in parallel."""

    name: BackendName = "llguidance"

    def compile(
        self, source: GrammarSource, table: TokenTable, close: str | None, name: str
    ) -> CompiledConstraint:
        return CompiledConstraint(source, table, close, name)

    def fill_masks(self, rows: Sequence[tuple[Matcher, int]], bitmask: Any) -> None:
        from llguidance.torch import fill_next_token_bitmask_par

        pairs = [(_own(m), row) for m, row in rows]
        fill_next_token_bitmask_par(executor(), [(m.matcher, row) for m, row in pairs], bitmask)
        for m, _ in pairs:
            m.raise_if_error()


def _own(matcher: Matcher) -> LLGuidanceConstraint:
    if not isinstance(matcher, LLGuidanceConstraint):
        raise TypeError(f"not an llguidance matcher: {type(matcher).__name__}")
    return matcher
