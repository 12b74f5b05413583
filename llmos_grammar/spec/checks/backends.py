"""Backend checks of a spec: which backend enforces each state, and do both agree on strings."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from llmos_grammar.constraints.choose import Enforcement
from llmos_grammar.errors import BackendError, Diagnostic, GrammarError, Location
from llmos_grammar.ir import GrammarSource, GrammarState, GrammarTest, State, TextState
from llmos_grammar.spec.schemas import crumb
from llmos_grammar.spec.yamldoc import Doc, Key

SAMPLES_PER_STATE = 8


def enforcement(states: dict[str, State]) -> dict[str, Enforcement]:
    """The backend enforcing each constrained state (None where the choice itself fails)."""
    from llmos_grammar.constraints import plan

    found: dict[str, Enforcement] = {}
    for name, state in states.items():
        if isinstance(state, GrammarState | TextState) and state.constraint is not None:
            close = state.close if isinstance(state, GrammarState) else None
            try:
                found[name] = plan(state.constraint, close, state.backend)
            except BackendError:
                continue
    return found


def backend_problems(
    doc: Doc, states: dict[str, State], tests: Iterable[GrammarTest], broken: set[str]
) -> list[Diagnostic]:
    """An explicit backend that cannot be honoured; strings the two backends judge differently
    (the state's inline tests, and samples of Outlines' language with mutations)."""
    from llmos_grammar.constraints import plan

    texts: dict[str, list[tuple[Key, str]]] = {}
    for test in tests:
        for expect, strings in (("accept", test.accept), ("reject", test.reject)):
            for i, text in enumerate(strings):
                texts.setdefault(test.state, []).append((("tests", test.state, expect, i), text))
    found: list[Diagnostic] = []
    for name, state in states.items():
        if name in broken or not isinstance(state, GrammarState | TextState):
            continue
        source = state.constraint
        if source is None:
            continue
        close = state.close if isinstance(state, GrammarState) else None
        try:
            how = plan(source, close, state.backend)
        except BackendError as exc:
            path: Key = ("states", name, "backend")
            where = doc.loc(path) if path in doc.nodes else doc.loc(("backend",))
            found.append(_error(f"state {name!r}: {exc.message}", where, path, "backend"))
            continue
        if how.backend == "outlines" and source.kind != "lark":
            found += _differential(doc, name, source, close, texts.get(name, []))
            if how.requested == "outlines":
                found += _divergence(doc, name, source, close)
    return found


def _differential(
    doc: Doc, name: str, source: GrammarSource, close: str | None, tests: list[tuple[Key, str]]
) -> list[Diagnostic]:
    from llmos_grammar.constraints.differential import disagreements, samples

    try:
        seed = zlib.crc32(source.text.encode())
        probes = samples(source, close, SAMPLES_PER_STATE, seed)
        pairs = tests + [(("states", name), text) for text in probes]
        wrong = {d.text: d for d in disagreements(source, close, [t for _, t in pairs])}
    except GrammarError as exc:
        return [_error(exc.message, doc.loc(("states", name)), ("states", name), "backend")]
    found = []
    for path, text in pairs:
        d = wrong.pop(text, None)
        if d is None:
            continue
        yes, no = ("Outlines", "llguidance") if d.outlines else ("llguidance", "Outlines")
        message = (
            f"the backends disagree on {text!r} in state {name!r}: "
            f"{yes} accepts it, {no} rejects it"
        )
        hint = f"set `backend: llguidance` on {name!r}, or make the grammar unambiguous there"
        found.append(_error(message, doc.loc(path), path, "backend-disagreement", hint))
    return found


def _divergence(doc: Doc, name: str, source: GrammarSource, close: str | None) -> list[Diagnostic]:
    """An explicit `backend: outlines` whose index allows other bytes than llguidance's."""
    from llmos_grammar.constraints.differential import divergence

    found = divergence(source, close)
    if found is None:
        return []
    path: Key = ("states", name, "backend")
    message = f"the backends disagree in state {name!r}: {found.message()}"
    hint = "drop `backend: outlines` (auto then picks llguidance here)"
    return [_error(message, doc.loc(path), path, "backend-disagreement", hint)]


def _error(message: str, where: Location, path: Key, code: str, hint: str = "") -> Diagnostic:
    return Diagnostic("error", message, where, crumb(path), code, hint)
