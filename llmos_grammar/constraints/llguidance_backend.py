"""llguidance matchers for Lark, regex and JSON-schema constraints, optionally ended by a close."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmos_grammar.constraints.backend import BackendName, Matcher, MatcherError
from llmos_grammar.constraints.tokens import TokenTable
from llmos_grammar.errors import GrammarError
from llmos_grammar.grammar.translate import lark_text
from llmos_grammar.ir import GrammarSource

if TYPE_CHECKING:
    from llguidance import LLExecutor, LLMatcher
    from torch import Tensor, dtype


class LLGuidanceConstraint:
    """One llguidance matcher instance (the Matcher interface)."""

    backend: BackendName = "llguidance"

    def __init__(self, matcher: LLMatcher, name: str) -> None:
        self.matcher = matcher
        self.name = name

    def consume(self, tokens: list[int]) -> bool:
        ok = bool(self.matcher.consume_tokens(tokens))
        return ok and not self.matcher.is_error()

    def forced(self) -> list[int]:
        return list(self.matcher.compute_ff_tokens())

    def rollback(self, n: int) -> None:
        """Undo the last `n` consumed tokens (the differential check walks a tree with it)."""
        if n and not self.matcher.rollback(n):
            raise MatcherError(f"cannot roll back {n} token(s): {self.matcher.get_error()}")

    def is_accepting(self) -> bool:
        return bool(self.matcher.is_accepting())

    @property
    def error(self) -> str:
        return str(self.matcher.get_error()) if self.matcher.is_error() else ""


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
    """The process's one llguidance thread pool for parallel mask computation."""
    import llguidance as llg

    return llg.LLExecutor()


class LLGuidanceBackend:
    """llguidance: Lark, regex and JSON schema; masks of many rows in parallel."""

    name: BackendName = "llguidance"

    def compile(
        self, source: GrammarSource, table: TokenTable, close: str | None, name: str
    ) -> CompiledConstraint:
        return CompiledConstraint(source, table, close, name)

    def fill_masks(
        self, rows: Sequence[tuple[Matcher, int]], bitmask: Tensor
    ) -> dict[int, MatcherError]:
        """Every row's mask in one call of the executor (in parallel, without the GIL).

        The call is llguidance.torch's `fill_next_token_bitmask_par` without importing
        that module (it compiles a torch kernel at import)."""
        pairs = [(_own(m), row) for m, row in rows]
        batch, words = bitmask.shape
        if bitmask.dtype != _int32() or not bitmask.is_contiguous() or bitmask.is_cuda:
            raise TypeError("a mask is a contiguous int32 CPU tensor")
        native = [(m.matcher, row) for m, row in pairs]
        executor().unsafe_compute_mask_ptr(native, bitmask.data_ptr(), words * 4, batch)
        return {row: MatcherError(m.error) for m, row in pairs if m.matcher.is_error()}


def _int32() -> dtype:
    import torch

    return torch.int32


def _own(matcher: Matcher) -> LLGuidanceConstraint:
    if not isinstance(matcher, LLGuidanceConstraint):
        raise TypeError(f"not an llguidance matcher: {type(matcher).__name__}")
    return matcher
