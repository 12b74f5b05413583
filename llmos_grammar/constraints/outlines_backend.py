"""outlines-core matchers for regex and JSON-schema constraints (Index + Guide per visit)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from llmos_grammar.constraints.backend import BackendName, Matcher, MatcherError
from llmos_grammar.constraints.outlines_build import Bounds, bounded_index
from llmos_grammar.constraints.tokens import TokenTable
from llmos_grammar.grammar.translate import outlines_regex
from llmos_grammar.ir import GrammarSource

if TYPE_CHECKING:
    from torch import Tensor

    from llmos_grammar.libtypes.outlines import Guide, Vocabulary

TOKEN_BOUNDS = Bounds(seconds=60.0)
MAX_FORCED = 64  # tokens followed when computing a forced continuation
MAX_FORCED_FANOUT = 512  # states allowing more tokens than this force nothing
MAX_ROLLBACK = 64


def vocabulary(table: TokenTable) -> Vocabulary:
    """The outlines-core Vocabulary of `table` (built once per table): every non-special
    token with its bytes; the table's EOS is the Vocabulary's EOS."""
    if "outlines_vocabulary" not in table.derived:
        import outlines_core

        tokens: dict[bytes, list[int]] = {}
        for i, data in enumerate(table.token_bytes):
            if data and i not in table.special and i != table.eos:
                tokens.setdefault(data, []).append(i)
        table.derived["outlines_vocabulary"] = outlines_core.Vocabulary(table.eos, tokens)
    return cast("Vocabulary", table.derived["outlines_vocabulary"])  # stored just above


def mask_words(table: TokenTable) -> int:
    """Width in int32 words of the mask outlines-core writes for `table`'s Vocabulary."""
    words = table.derived.get("outlines_words")
    if not isinstance(words, int):
        ids = [i for i, d in enumerate(table.token_bytes) if d and i not in table.special]
        words = table.derived["outlines_words"] = (max([*ids, table.eos]) + 1 + 31) // 32
    return words


class OutlinesCompiled:
    """An outlines-core Index over a tokenizer's vocabulary; `new()` gives a Guide per visit."""

    backend: BackendName = "outlines"

    def __init__(
        self,
        source: GrammarSource,
        table: TokenTable,
        close: str | None,
        name: str,
        bounds: Bounds = TOKEN_BOUNDS,
    ) -> None:
        self.name = name
        self.regex = outlines_regex(source, close)
        self.table = table
        self.words = mask_words(table)
        self.index = bounded_index(self.regex, vocabulary(table), table.digest(), bounds)

    @functools.cached_property
    def transitions(self) -> dict[int, dict[int, int]]:
        """state -> {token: next state} (the whole index: for small, byte-level ones)."""
        return dict(self.index.get_transitions())

    def new(self) -> OutlinesMatcher:
        import outlines_core

        return OutlinesMatcher(self, outlines_core.Guide(self.index, max_rollback=MAX_ROLLBACK))


class OutlinesMatcher:
    """One Guide walking the Index (the Matcher interface)."""

    backend: BackendName = "outlines"

    def __init__(self, compiled: OutlinesCompiled, guide: Guide) -> None:
        self.compiled = compiled
        self.name = compiled.name
        self.guide = guide
        self._error = ""
        self._scratch: Tensor | None = None

    def fill_mask(self, bitmask: Tensor, row: int = 0) -> None:
        """Write the allowed tokens into `bitmask[row]` (see `Backend.fill_masks`)."""
        target = bitmask[row]
        words = self.compiled.words
        if target.numel() == words:
            self.guide.write_mask_into(target.data_ptr(), words, 4)
            return
        import torch

        if self._scratch is None:
            self._scratch = torch.zeros(words, dtype=torch.int32)
        self.guide.write_mask_into(self._scratch.data_ptr(), words, 4)
        target.zero_()
        keep = min(words, target.numel())
        target[:keep].copy_(self._scratch[:keep])

    def consume(self, tokens: list[int]) -> bool:
        for token in tokens:
            if token == self.compiled.table.eos and self.guide.is_finished():
                continue
            try:
                self.guide.advance(token, return_tokens=False)
            except ValueError:
                data = self.compiled.table.decode([token])
                self._error = f"token {token} ({data!r}) is not allowed by the regex"
                return False
        return True

    def forced(self) -> list[int]:
        """The tokens taken while every allowed token starts with one byte string P and P is
        itself a token (the grammar forces P); stops at accepting states."""
        index = self.compiled.index
        table = self.compiled.table
        state = self.guide.get_state()
        out: list[int] = []
        while len(out) < MAX_FORCED and not index.is_final_state(state):
            token = _forced_token(index.get_allowed_tokens(state), table)
            if token is None:
                break
            out.append(token)
            following = index.get_next_state(state, token)
            if following is None:
                break
            state = following
        return out

    def is_accepting(self) -> bool:
        return bool(self.guide.is_finished())

    @property
    def error(self) -> str:
        return self._error


def _forced_token(allowed: list[int] | None, table: TokenTable) -> int | None:
    """The token every allowed token starts with, when there is one (and few are allowed)."""
    if not allowed or len(allowed) > MAX_FORCED_FANOUT:
        return None
    datas = [table.token_bytes[t] for t in allowed if t < len(table.token_bytes)]
    if len(datas) != len(allowed):
        return None
    shortest = min(range(len(allowed)), key=lambda i: len(datas[i]))
    prefix = datas[shortest]
    if all(d.startswith(prefix) for d in datas):
        return allowed[shortest]
    return None


class OutlinesBackend:
    """outlines-core: regex, and JSON schema through its regex; Lark is refused."""

    name: BackendName = "outlines"

    def compile(
        self, source: GrammarSource, table: TokenTable, close: str | None, name: str
    ) -> OutlinesCompiled:
        return OutlinesCompiled(source, table, close, name)

    def fill_masks(
        self, rows: Sequence[tuple[Matcher, int]], bitmask: Tensor
    ) -> dict[int, MatcherError]:
        """Each row's mask in turn (a Guide has no error state: a rejected token is refused
        when it is consumed)."""
        for matcher, row in rows:
            if not isinstance(matcher, OutlinesMatcher):
                raise TypeError(f"not an Outlines matcher: {type(matcher).__name__}")
            matcher.fill_mask(bitmask, row)
        return {}
