"""The byte walk: a state's text fed to its byte-level matcher (as the decoder feeds tokens),
stopped at the first refused byte with the matcher still usable there, and what it allows.

Each backend takes bytes without entering its error state (llguidance's
`try_consume_tokens`, an Outlines Guide that refuses a token without moving) and undoes
what it took (`rollback`), so one walk answers every question asked at its end: the text
can be long, and llguidance's cost grows with the text it has taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmos_grammar.constraints.backend import BackendName, Compiled, Matcher
from llmos_grammar.constraints.llguidance_backend import LLGuidanceConstraint
from llmos_grammar.constraints.outlines_backend import OutlinesMatcher
from llmos_grammar.constraints.tokens import byte_table

BYTES = 256  # token i < 256 of the byte table is byte i


@dataclass
class Walk:
    """Where the matcher stopped taking the text; `matcher` stands there."""

    matcher: Matcher
    taken: int  # bytes taken before one was refused (all of them when none was)
    refused: bool
    ended: bool  # the state ends after `taken` bytes: its close completed an accepted text


def walk(compiled: Compiled, data: bytes, close: str | None) -> Walk:
    """Feed `data`; stop at the first refused byte, or where the decoder leaves the state
    (the text so far ends with `close` and the matcher accepts it)."""
    matcher = compiled.new()
    ends = _close_ends(data, close)
    taken = 0
    for end in [*ends, len(data)]:
        step = take(matcher, data[taken:end])
        taken += step
        if taken < end:
            return Walk(matcher, taken, refused=True, ended=False)
        if end in ends and matcher.is_accepting():
            return Walk(matcher, taken, refused=False, ended=True)
    return Walk(matcher, taken, refused=False, ended=False)


def take(matcher: Matcher, data: bytes) -> int:
    """How many bytes of `data` the matcher takes (it stands after them, usable)."""
    return TAKE[matcher.backend](matcher, data) if data else 0


def accepts_next(matcher: Matcher, data: bytes) -> bool:
    """Whether the matcher takes `data` next and then accepts (it does not move)."""
    taken = take(matcher, data)
    accepted = taken == len(data) and matcher.is_accepting()
    UNDO[matcher.backend](matcher, taken)
    return accepted


def allowed_bytes(matcher: Matcher) -> frozenset[int]:
    """The bytes `matcher` allows next (from its backend's own mask over the byte table)."""
    return ALLOWED[matcher.backend](matcher)


def forced_text(matcher: Matcher) -> bytes:
    """The bytes the grammar forces next (empty when it forces none)."""
    return byte_table().decode(matcher.forced())


def _close_ends(data: bytes, close: str | None) -> list[int]:
    """Every offset just after an occurrence of `close` in `data`, in order."""
    if not close:
        return []
    mark, ends = close.encode(), []
    at = data.find(mark)
    while at >= 0:
        ends.append(at + len(mark))
        at = data.find(mark, at + 1)
    return ends


def _llguidance(matcher: Matcher) -> LLGuidanceConstraint:
    if not isinstance(matcher, LLGuidanceConstraint):
        raise TypeError(f"not an llguidance matcher: {type(matcher).__name__}")
    return matcher


def _outlines(matcher: Matcher) -> OutlinesMatcher:
    if not isinstance(matcher, OutlinesMatcher):
        raise TypeError(f"not an Outlines matcher: {type(matcher).__name__}")
    return matcher


def _llguidance_take(matcher: Matcher, data: bytes) -> int:
    native = _llguidance(matcher).matcher
    return 0 if native.is_error() else int(native.try_consume_tokens(list(data)))


def _outlines_take(matcher: Matcher, data: bytes) -> int:
    own = _outlines(matcher)
    for i, byte in enumerate(data):
        if not own.consume([byte]):  # a refused token leaves the Guide where it was
            return i
    return len(data)


def _llguidance_allowed(matcher: Matcher) -> frozenset[int]:
    mask = _llguidance(matcher).matcher.compute_bitmask()
    return frozenset(b for b in range(BYTES) if mask[b // 8] >> (b % 8) & 1)


def _outlines_allowed(matcher: Matcher) -> frozenset[int]:
    own = _outlines(matcher)
    tokens = own.compiled.index.get_allowed_tokens(own.guide.get_state()) or []
    return frozenset(t for t in tokens if t < BYTES)


def _outlines_undo(matcher: Matcher, n: int) -> None:
    if n:
        _outlines(matcher).guide.rollback_state(n)


TAKE: dict[BackendName, Callable[[Matcher, bytes], int]] = {
    "llguidance": _llguidance_take,
    "outlines": _outlines_take,
}
UNDO: dict[BackendName, Callable[[Matcher, int], None]] = {
    "llguidance": lambda matcher, n: _llguidance(matcher).rollback(n),
    "outlines": _outlines_undo,
}
ALLOWED: dict[BackendName, Callable[[Matcher], frozenset[int]]] = {
    "llguidance": _llguidance_allowed,
    "outlines": _outlines_allowed,
}
