"""The `auto` choice: which backend enforces a constraint, and compiling with it."""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass

from llmos_grammar.constraints import outlines_build
from llmos_grammar.constraints.backend import BackendName, Compiled
from llmos_grammar.constraints.differential import divergence
from llmos_grammar.constraints.registry import BACKENDS, byte_compiled
from llmos_grammar.constraints.registry import CHECK_BOUNDS as CHECK
from llmos_grammar.constraints.tokens import TokenTable
from llmos_grammar.errors import BackendError, GrammarError
from llmos_grammar.grammar.translate import bare
from llmos_grammar.ir import BackendChoice, GrammarSource


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
    for a regex or JSON schema it expresses exactly within CHECK_BOUNDS, and whose byte index
    allows what llguidance allows at every state, else llguidance (with the reason).
    BackendError (no location) when an explicit `outlines` cannot be honoured."""
    return _plan(bare(source), close, choice)


@functools.lru_cache(maxsize=256)
def _plan(source: GrammarSource, close: str | None, choice: BackendChoice) -> Enforcement:
    if choice == "llguidance":
        return Enforcement("llguidance", "", choice)
    if source.kind == "lark" and choice == "auto":
        return Enforcement("llguidance", "", choice)
    try:
        byte_compiled(source, close, "outlines")
    except GrammarError as exc:
        if choice == "outlines":
            raise BackendError(exc.message) from None
        return Enforcement("llguidance", exc.message, choice)
    if choice == "auto":
        reason = _divergence_reason(source, close)
        if reason:
            return Enforcement("llguidance", reason, choice)
    return Enforcement("outlines", "", choice)


def _divergence_reason(source: GrammarSource, close: str | None) -> str:
    """Why Outlines' byte index diverges from llguidance ("" when it does not), remembered on
    disk next to the index so that a later check answers without walking the index."""
    against = f"divergence:{source.kind}:llguidance-{importlib.metadata.version('llguidance')}"
    language = f"{close}\0{source.json_whitespace}\0{source.text}"
    key = outlines_build.cache_key(language, against, CHECK)
    path = outlines_build.cache_dir() / f"{key}.divergence"
    if path.is_file():
        return path.read_text()
    found = divergence(source, close)
    reason = found.message() if found is not None else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason)
    return reason


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
