"""Collect every diagnostic of specs, policies and their grammars (no torch, no model)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmos_grammar.errors import Diagnostic, LlmosError, Location, Report
from llmos_grammar.ir import Machine, Policy, State
from llmos_grammar.paths import default_policy
from llmos_grammar.spec import compile as compiler
from llmos_grammar.spec import schemas, yamldoc
from llmos_grammar.spec.checks.grammars import grammar_problems, test_problems
from llmos_grammar.spec.checks.machine import Analysis, template_problems
from llmos_grammar.spec.checks.policy import check_policy_doc
from llmos_grammar.spec.schemas import crumb
from llmos_grammar.spec.yamldoc import Doc, Key

SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "venv", "build", "dist"})


@dataclass
class Checked:
    """What checking one file produced."""

    path: str
    kind: str  # "spec" | "policy" | "unknown"
    diagnostics: list[Diagnostic] = field(default_factory=list)
    machine: Machine | None = None
    policy: Policy | None = None
    doc: Doc | None = None


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


def expand(paths: Iterable[str]) -> list[str]:
    """Files as given; folders searched for specs and policies (hidden folders skipped)."""
    out: list[str] = []
    for raw in paths:
        if not Path(raw).is_dir():
            out.append(raw)
            continue
        for folder, dirs, files in os.walk(raw):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
            for name in sorted(files):
                path = Path(folder) / name
                if path.suffix in (".yaml", ".yml") and _looks_like_ours(path):
                    out.append(str(path))
    return out


def _looks_like_ours(path: Path) -> bool:
    try:
        with path.open("rb") as handle:  # the head says it; a large file is not read whole
            head = handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return any(line.startswith(("llmos:", "llmos-policy:")) for line in head.splitlines())


def check_file(path: str) -> Checked:
    try:
        doc = yamldoc.load(path)
    except LlmosError as exc:
        return Checked(path, "unknown", [_from_error(exc, path)])
    kind = detect(doc)
    if kind == "policy":
        diagnostics, policy = check_policy_doc(doc)
        return Checked(path, kind, diagnostics, policy=policy, doc=doc)
    if kind == "spec":
        return check_spec_doc(doc)
    message = "not an llmos spec (`llmos: 1`) or policy (`llmos-policy: 1`)"
    hint = "add `llmos: 1` at the top of a spec, or `llmos-policy: 1` of a policy"
    return Checked(path, "unknown", [Diagnostic("error", message, doc.loc(()), "", "kind", hint)])


def detect(doc: Doc) -> str | None:
    if isinstance(doc.data, dict):
        if "llmos-policy" in doc.data:
            return "policy"
        if "llmos" in doc.data or "states" in doc.data:
            return "spec"
    return None


def _from_error(exc: LlmosError, path: str) -> Diagnostic:
    where = exc.location or Location(path)
    return Diagnostic("error", exc.message, where, "", type(exc).__name__)


# ---- specs ------------------------------------------------------------------


def check_spec_doc(doc: Doc) -> Checked:
    checked = Checked(doc.file, "spec", doc=doc)
    checked.diagnostics = schemas.validate(doc, "spec")
    if checked.diagnostics:
        return checked
    policy, policy_text = _spec_policy(doc, checked.diagnostics)
    states, broken = _compile_states(doc, checked.diagnostics)
    checked.diagnostics += Analysis(doc, doc.data["start"], states, policy).run()
    checked.diagnostics += _prompt_problems(doc)
    sound = {n: s for n, s in states.items() if n not in broken}
    checked.diagnostics += grammar_problems(doc, sound, broken)
    checked.diagnostics += test_problems(doc, sound, broken)
    if policy is not None and not any(d.severity == "error" for d in checked.diagnostics):
        checked.machine = compiler.compile_machine(doc, states, policy, policy_text)
        checked.policy = policy
    return checked


def _spec_policy(doc: Doc, out: list[Diagnostic]) -> tuple[Policy | None, str]:
    raw = doc.data.get("policy")
    path = Path(doc.file).resolve().parent / raw if raw else default_policy()
    try:
        policy_doc = yamldoc.load(path)
    except LlmosError as exc:
        where = doc.loc(("policy",)) if raw else doc.loc(())
        out.append(
            Diagnostic(
                "error",
                f"policy: {exc.message}",
                where,
                "policy",
                "policy",
                f"fix or create {path}",
            )
        )
        return None, ""
    problems, policy = check_policy_doc(policy_doc)
    out.extend(problems)
    return policy, policy_doc.text


def _compile_states(doc: Doc, out: list[Diagnostic]) -> tuple[dict[str, State], set[str]]:
    """All states, and the names of those whose grammar could not be loaded."""
    states: dict[str, State] = {}
    broken: set[str] = set()
    for name, raw in doc.data["states"].items():
        path: Key = ("states", name)
        given = [k for k in compiler.CONSTRAINT_KEYS if k in raw]
        source = None
        if len(given) > 1:
            where = doc.loc((*path, given[1]), key=True)
            out.append(
                Diagnostic(
                    "error",
                    f"more than one constraint: {', '.join(given)}",
                    where,
                    crumb(path),
                    "constraint",
                    "keep one of grammar, lark, regex, json_schema",
                )
            )
            broken.add(name)
        elif raw["type"] == "grammar" and not given:
            out.append(
                Diagnostic(
                    "error",
                    "grammar state without a grammar",
                    doc.loc(path, key=True),
                    crumb(path),
                    "constraint",
                    "add one of grammar, lark, regex, json_schema",
                )
            )
            broken.add(name)
        elif given:
            try:
                source = compiler.constraint_source(doc, path, raw)
            except LlmosError as exc:
                at = (*path, given[0])
                where = exc.location if exc.location and exc.location.line else doc.loc(at)
                out.append(Diagnostic("error", exc.message, where, crumb(at), type(exc).__name__))
                broken.add(name)
        states[name] = compiler.compile_state(doc, name, raw, source)
    return states, broken


def _prompt_problems(doc: Doc) -> list[Diagnostic]:
    user = doc.data.get("prompt", {}).get("user")
    if user is None:
        return []
    path: Key = ("prompt", "user")
    found = [
        Diagnostic("error", m, doc.loc(path), crumb(path), "bad-template")
        for m in template_problems(user, {"task"})
    ]
    if not found and "{task}" not in user:
        found.append(
            Diagnostic(
                "warning",
                "the user template does not contain {task}",
                doc.loc(path),
                crumb(path),
                "no-task",
            )
        )
    return found
