"""Backends by name, the `auto` choice, and masks of many matchers at once."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmos_grammar.constraints.backend import Backend, BackendName, Compiled, Matcher
from llmos_grammar.constraints.llguidance_backend import LLGuidanceBackend
from llmos_grammar.constraints.outlines_backend import OutlinesBackend, OutlinesCompiled
from llmos_grammar.constraints.outlines_build import Bounds
from llmos_grammar.constraints.tokens import TokenTable, byte_table
from llmos_grammar.errors import BackendError, GrammarError, Location
from llmos_grammar.ir import BackendChoice, GrammarSource

BACKENDS: dict[BackendName, Backend] = {
    "llguidance": LLGuidanceBackend(),
    "outlines": OutlinesBackend(),
}
# the byte-level build `plan` makes: small enough for `llmos-check`, a proxy for the
# tokenizer-level index (whose states are those of the same DFA)
CHECK_BOUNDS = Bounds(seconds=2.0, states=20_000)
_NOWHERE = Location("<constraint>")


@dataclass(frozen=True)
class Enforcement:
    """Which backend enforces a constraint, and why."""

    backend: BackendName
    reason: str
    requested: BackendChoice = "auto"

    @property
    def fell_back(self) -> bool:
        return self.requested == "auto" and self.backend == "llguidance" and bool(self.reason)


def plan(source: GrammarSource, close: str | None, choice: BackendChoice = "auto") -> Enforcement:
    """The backend for `source` (+ `close`) decided without a tokenizer: `auto` takes Outlines
    for a regex or JSON schema it expresses exactly within CHECK_BOUNDS, else llguidance (with
    the reason). BackendError (no location) when an explicit `outlines` cannot be honoured."""
    return _plan(source.kind, source.text, close, choice)


@functools.lru_cache(maxsize=256)
def _plan(kind: str, text: str, close: str | None, choice: BackendChoice) -> Enforcement:
    if choice == "llguidance":
        return Enforcement("llguidance", "", choice)
    if kind == "lark" and choice == "auto":
        return Enforcement("llguidance", "", choice)
    source = GrammarSource(kind, text, _NOWHERE)  # type: ignore[arg-type]
    try:
        byte_compiled(source, close, "outlines")
    except GrammarError as exc:
        if choice == "outlines":
            raise BackendError(exc.message) from None
        return Enforcement("llguidance", exc.message, choice)
    return Enforcement("outlines", "", choice)


def byte_compiled(source: GrammarSource, close: str | None, backend: BackendName) -> Compiled:
    """`source` compiled by `backend` over the byte table (token i < 256 is byte i)."""
    if backend == "outlines":
        return OutlinesCompiled(source, byte_table(), close, "check", CHECK_BOUNDS)
    return BACKENDS[backend].compile(source, byte_table(), close, "check")


def compile_constraint(
    source: GrammarSource,
    table: TokenTable,
    close: str | None,
    name: str,
    choice: BackendChoice = "auto",
) -> tuple[Compiled, Enforcement]:
    """`source` compiled for `table` by the backend `choice` resolves to. `auto` falls back to
    llguidance (saying why) when Outlines cannot express it or its index passes the bounds;
    an explicit `outlines` that cannot be honoured raises BackendError at the source."""
    try:
        enforcement = plan(source, close, choice)
        if enforcement.backend == "outlines":
            try:
                return BACKENDS["outlines"].compile(source, table, close, name), enforcement
            except BackendError as exc:
                if choice == "outlines":
                    raise
                enforcement = Enforcement("llguidance", exc.message, choice)
    except BackendError as exc:
        raise BackendError(f"state {name!r}: {exc.message}", source.location) from None
    return BACKENDS["llguidance"].compile(source, table, close, name), enforcement


def fill_masks(rows: Sequence[tuple[Matcher, int]], bitmask: Any) -> None:
    """Fill `bitmask[row]` for every (matcher, row): each backend's rows in one call
    (llguidance in parallel on its thread pool)."""
    groups: dict[BackendName, list[tuple[Matcher, int]]] = {}
    for matcher, row in rows:
        groups.setdefault(matcher.backend, []).append((matcher, row))
    for name, group in groups.items():
        BACKENDS[name].fill_masks(group, bitmask)
