"""Which lexemes of a Lark grammar may start at a place, and which one is in progress there,
asked of llguidance over the marked grammar (see marks.py)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from llmos_grammar.constraints.explain.marks import LEADS, Use, mark_rules, marker
from llmos_grammar.errors import GrammarError
from llmos_grammar.grammar.backend import compile_matcher
from llmos_grammar.grammar.larktext import terminal_text
from llmos_grammar.grammar.translate import bare
from llmos_grammar.ir import GrammarSource

if TYPE_CHECKING:
    from llguidance import LLMatcher

LOOK_BACK = 64  # bytes searched back for the start of the lexeme in progress
MARK_LEADS = frozenset(LEADS)  # the first bytes of markers


@dataclass(frozen=True)
class Lexeme:
    """The lexeme in progress at a place: the text since it began and what it may become."""

    start: int  # byte offset where it began
    text: bytes
    terminals: tuple[str, ...]  # the lexemes this text can still grow into
    complete: tuple[str, ...]  # those of them it already is, whole


class Lexemes:
    """The lexemes of one Lark source (and close), asked of one matcher walked over a text.

    Questions are asked by taking marker bytes and rolling them back (a copy of a matcher
    costs as much as the text it has taken)."""

    def __init__(self, source: GrammarSource, close: str | None) -> None:
        self.source = source
        text, self.names = mark_rules(source.text)
        self.template = compile_matcher(replace(source, text=text), close)
        self._marks = [marker(index) for index in range(len(self.names))]

    def after(self, data: bytes) -> LLMatcher | None:
        """The marked matcher after `data`; None when it does not take all of it."""
        matcher = self.template.deep_copy()
        if matcher.try_consume_tokens(list(data)) != len(data) or matcher.is_error():
            return None
        return matcher

    def starting(self, matcher: LLMatcher) -> tuple[Use, ...]:
        """The lexemes that may start where `matcher` stands, each with the rule using it
        (`matcher` is left where it stands). Each marker is taken whole and rolled back:
        a mask computed between a marker's bytes breaks llguidance's (1.9) rollback."""
        mask = matcher.compute_bitmask()
        if not any(_bit(mask, b) for b in MARK_LEADS):
            return ()
        found: list[Use] = []
        for use, mark in zip(self.names, self._marks, strict=True):
            taken = matcher.try_consume_tokens(list(mark))
            if taken:
                matcher.rollback(taken)
            if taken == len(mark):
                found.append(use)
        return tuple(found)

    def allowed(self, matcher: LLMatcher) -> frozenset[int]:
        """The bytes of text (markers aside) the marked matcher allows next."""
        mask = matcher.compute_bitmask()
        return frozenset(b for b in range(256) if b not in MARK_LEADS and _bit(mask, b))

    def in_progress(
        self, matcher: LLMatcher, data: bytes, allowed: frozenset[int]
    ) -> Lexeme | None:
        """The lexeme that the end of `data` (where `matcher` stands) is inside, when it can
        go on with a byte of `allowed`: from the earliest place within LOOK_BACK bytes where
        a lexeme may start whose language has all the text since then as a prefix (lexemes
        are greedy: the longest reading wins). Leaves `matcher` somewhere in between."""
        back = min(LOOK_BACK, len(data))
        if back and not matcher.rollback(back):
            return None
        for start in range(len(data) - back, len(data)):
            piece = data[start:]
            names = dict.fromkeys(lexeme for lexeme, _ in self.starting(matcher))
            grows = [n for n in names if self._grows(n, piece, allowed)]
            if grows:
                whole = tuple(n for n in grows if self._whole(n, piece))
                return Lexeme(start, piece, tuple(grows), whole)
            if matcher.try_consume_tokens([data[start]]) != 1:
                return None
        return None

    def _grows(self, name: str, piece: bytes, allowed: frozenset[int]) -> bool:
        alone = _alone(self.source, name)
        if alone is None:
            return False
        matcher = alone.deep_copy()
        if matcher.try_consume_tokens(list(piece)) != len(piece) or matcher.is_error():
            return False
        mask = matcher.compute_bitmask()
        return any(_bit(mask, b) for b in allowed)

    def _whole(self, name: str, piece: bytes) -> bool:
        alone = _alone(self.source, name)
        if alone is None:
            return False
        matcher = alone.deep_copy()
        return matcher.try_consume_tokens(list(piece)) == len(piece) and matcher.is_accepting()


def lexemes(source: GrammarSource, close: str | None) -> Lexemes | None:
    """The marked grammar of a Lark `source`; None when it is not Lark or does not compile."""
    if source.kind != "lark":
        return None
    return _lexemes(bare(source), close)


@functools.lru_cache(maxsize=16)
def _lexemes(source: GrammarSource, close: str | None) -> Lexemes | None:
    try:
        return Lexemes(source, close)
    except GrammarError:
        return None


@functools.lru_cache(maxsize=256)
def _alone(source: GrammarSource, name: str) -> LLMatcher | None:
    """A matcher of the one lexeme `name` (a terminal, a literal or a regex) of `source`."""
    terminals = terminal_text(source.text) if name.lstrip("_")[:1].isupper() else ""
    text = f"{terminals}\nstart: {name}\n"
    try:
        return compile_matcher(replace(bare(source), text=text))
    except GrammarError:
        return None


def _bit(mask: bytes, byte: int) -> bool:
    return bool(mask[byte // 8] >> (byte % 8) & 1)
