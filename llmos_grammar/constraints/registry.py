"""Backends by name, byte-level compilation for checks, and masks of many matchers at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmos_grammar.constraints.backend import Backend, BackendName, Compiled, Matcher, MatcherError
from llmos_grammar.constraints.llguidance_backend import LLGuidanceBackend
from llmos_grammar.constraints.outlines_backend import OutlinesBackend, OutlinesCompiled
from llmos_grammar.constraints.outlines_build import Bounds
from llmos_grammar.constraints.tokens import byte_table
from llmos_grammar.errors import Location
from llmos_grammar.ir import GrammarSource

if TYPE_CHECKING:
    from torch import Tensor

BACKENDS: dict[BackendName, Backend] = {
    "llguidance": LLGuidanceBackend(),
    "outlines": OutlinesBackend(),
}
# the byte-level build `plan` makes: small enough for `llmos-check`, a proxy for the
# tokenizer-level index (whose states are those of the same DFA)
CHECK_BOUNDS = Bounds(seconds=2.0, states=20_000)
_NOWHERE = Location("<constraint>")


def byte_compiled(source: GrammarSource, close: str | None, backend: BackendName) -> Compiled:
    """`source` compiled by `backend` over the byte table (token i < 256 is byte i)."""
    if backend == "outlines":
        return OutlinesCompiled(source, byte_table(), close, "check", CHECK_BOUNDS)
    return BACKENDS[backend].compile(source, byte_table(), close, "check")


def fill_masks(rows: Sequence[tuple[Matcher, int]], bitmask: Tensor) -> dict[int, MatcherError]:
    """Fill `bitmask[row]` for every (matcher, row): each backend's rows in one call
    (llguidance in parallel on its thread pool). Returns the rows whose matcher is in its
    error state, with the error (see `Backend.fill_masks`)."""
    groups: dict[BackendName, list[tuple[Matcher, int]]] = {}
    for matcher, row in rows:
        groups.setdefault(matcher.backend, []).append((matcher, row))
    errors: dict[int, MatcherError] = {}
    for name, group in groups.items():
        errors.update(BACKENDS[name].fill_masks(group, bitmask))
    return errors
