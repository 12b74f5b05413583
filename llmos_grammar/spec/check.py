"""`llmos check` over files and folders: every diagnostic of specs, policies and their grammars.

No torch and no model: compilation is `spec.compile`, the one front end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from llmos_grammar.constraints.choose import Enforcement
from llmos_grammar.errors import Diagnostic, LlmosError, Location, Report
from llmos_grammar.ir import GrammarState, Machine, Policy
from llmos_grammar.spec import yamldoc
from llmos_grammar.spec.checks.backends import enforcement
from llmos_grammar.spec.compile import compile_policy, compile_spec
from llmos_grammar.spec.discover import expand
from llmos_grammar.spec.yamldoc import Doc

FileKind = Literal["spec", "policy", "unknown"]


@dataclass(frozen=True)
class Exclusion:
    """The close delimiter the compiler excluded from a grammar state's NO_CLOSE terminals."""

    location: Location  # the state's `close`
    state: str
    close: str
    terminals: tuple[str, ...]  # the terminals that use NO_CLOSE

    def format(self) -> str:
        names = ", ".join(self.terminals) or "NO_CLOSE"
        return (
            f"{self.location}: info: state {self.state!r}: close {self.close!r} excluded "
            f"from {names} (NO_CLOSE)"
        )


@dataclass
class Checked:
    """What checking one file produced."""

    path: str
    kind: FileKind
    diagnostics: list[Diagnostic] = field(default_factory=list)
    machine: Machine | None = None
    policy: Policy | None = None
    doc: Doc | None = None
    # state -> the backend enforcing its constraint, and why (specs that compiled)
    backends: dict[str, Enforcement] = field(default_factory=dict)

    def exclusions(self) -> list[Exclusion]:
        """The close exclusions applied to this spec's grammar states (none for a policy)."""
        if self.machine is None or self.doc is None:
            return []
        from llmos_grammar.grammar.noclose import hook_users

        return [
            Exclusion(
                self.doc.loc(("states", name, "close")),
                name,
                state.close,
                tuple(hook_users(state.constraint)),
            )
            for name, state in self.machine.states.items()
            if isinstance(state, GrammarState) and state.constraint.excludes
        ]


def check_paths(paths: Sequence[str]) -> tuple[Report, list[Checked]]:
    """Check files and folders (specs and policies found below them)."""
    report = Report()
    results = []
    seen: set[tuple[Location, str]] = set()  # a policy shared by specs is reported once
    for path in expand(paths):
        checked = check_file(path)
        checked.diagnostics.sort(key=lambda d: _order(d, path))
        for d in checked.diagnostics:
            if (d.location, d.message) not in seen:
                seen.add((d.location, d.message))
                report.add(d)
        results.append(checked)
    return report, results


def _order(d: Diagnostic, path: str) -> tuple[bool, str, int, int]:
    """The checked file's own problems first, by line and column; then other files'."""
    where = d.location
    return (where.file != path, where.file, where.line, where.column)


def check_file(path: str) -> Checked:
    """Load and compile one file, collecting every diagnostic; never raises for bad input."""
    try:
        doc = yamldoc.load(path)
    except LlmosError as exc:
        where = exc.location or Location(path)
        found = [Diagnostic("error", exc.message, where, "", type(exc).__name__)]
        return Checked(path, "unknown", found)
    kind = detect(doc)
    if kind == "policy":
        policy, found = compile_policy(doc)
        return Checked(path, kind, found, policy=policy, doc=doc)
    if kind == "spec":
        machine, found = compile_spec(doc)
        if machine is None:
            return Checked(path, kind, found, doc=doc)
        backends = enforcement(dict(machine.states))
        return Checked(path, kind, found, machine, machine.policy, doc, backends)
    message = "not an llmos spec (`llmos: 1`) or policy (`llmos-policy: 1`)"
    hint = "add `llmos: 1` at the top of a spec, or `llmos-policy: 1` of a policy"
    return Checked(path, "unknown", [Diagnostic("error", message, doc.loc(()), "", "kind", hint)])


def detect(doc: Doc) -> FileKind:
    if isinstance(doc.data, dict):
        if "llmos-policy" in doc.data:
            return "policy"
        if "llmos" in doc.data or "states" in doc.data:
            return "spec"
    return "unknown"
