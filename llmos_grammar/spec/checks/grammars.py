"""Grammar checks of a spec: each constraint compiled, close delimiters, inline tests."""

from __future__ import annotations

from collections.abc import Iterable

from llmos_grammar.errors import Diagnostic, Location
from llmos_grammar.ir import GrammarSource, GrammarState, GrammarTest, State, TextState
from llmos_grammar.spec.checks.machine import suggest
from llmos_grammar.spec.schemas import crumb
from llmos_grammar.spec.yamldoc import Doc, Key


def constraints(states: dict[str, State]) -> list[tuple[str, GrammarSource]]:
    return [
        (n, s.constraint)
        for n, s in states.items()
        if isinstance(s, GrammarState | TextState) and s.constraint is not None
    ]


def grammar_problems(doc: Doc, states: dict[str, State], broken: set[str]) -> list[Diagnostic]:
    """Diagnostics of each constraint; adds the states whose grammar fails to `broken`."""
    from llmos_grammar import grammar

    found: list[Diagnostic] = []
    for name, source in constraints(states):
        problems = grammar.validate(source)
        found += [_with_crumb(d, ("states", name)) for d in problems]
        if any(d.severity == "error" for d in problems):
            broken.add(name)
            continue
        state = states[name]
        if isinstance(state, GrammarState):
            conflict = grammar.close_conflict(source, state.close)
            if conflict is not None:
                found.append(
                    _relocate(
                        conflict,
                        doc.loc(("states", name, "close")),
                        crumb(("states", name, "close")),
                    )
                )
    return found


def test_problems(
    doc: Doc, tests: Iterable[GrammarTest], states: dict[str, State], broken: set[str]
) -> list[Diagnostic]:
    """The spec's inline tests (`Machine.tests`) run through the backend's matcher."""
    from llmos_grammar import grammar

    found: list[Diagnostic] = []
    constrained = dict(constraints(states))
    for test in tests:
        name = test.state
        if name in broken:
            continue
        if name not in constrained:
            what = "unknown state" if name not in states else "state without a grammar"
            found.append(
                Diagnostic(
                    "error",
                    f"tests for {what} {name!r}",
                    doc.loc(("tests", name), key=True),
                    f"tests.{name}",
                    "grammar-test",
                    suggest(name, constrained),
                )
            )
            continue
        source = constrained[name]
        for expect, texts in (("accept", test.accept), ("reject", test.reject)):
            for i, text in enumerate(texts):
                if grammar.accepts(source, text) != (expect == "accept"):
                    path: Key = ("tests", name, expect, i)
                    verb = "rejects" if expect == "accept" else "accepts"
                    found.append(
                        Diagnostic(
                            "error",
                            f"grammar of {name!r} {verb} {text!r}",
                            doc.loc(path),
                            crumb(path),
                            "grammar-test",
                        )
                    )
    return found


def _with_crumb(d: Diagnostic, path: Key) -> Diagnostic:
    if d.path:
        return d
    return Diagnostic(d.severity, d.message, d.location, crumb(path), d.code, d.hint)


def _relocate(d: Diagnostic, where: Location, path: str) -> Diagnostic:
    return Diagnostic(d.severity, d.message, where, path, d.code, d.hint)
