"""Collect every diagnostic of specs, policies and their grammars (no torch, no model)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmos_grammar import compile as compiler
from llmos_grammar import schemas, yamldoc
from llmos_grammar.analysis import Analysis, suggest, template_problems
from llmos_grammar.errors import Diagnostic, LlmosError, Location, Report
from llmos_grammar.ir import (
    ActionPolicy,
    GrammarSource,
    GrammarState,
    Machine,
    Policy,
    State,
    TextState,
)
from llmos_grammar.paths import default_policy
from llmos_grammar.schemas import crumb
from llmos_grammar.yamldoc import Doc, Key

BUILTIN_HANDLERS = frozenset({"python", "shell", "sqlite", "files", "http"})
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
    for path in expand(paths):
        checked = check_file(path)
        report.extend(checked.diagnostics)
        results.append(checked)
    return report, results


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
        head = path.read_bytes()[:4096].decode("utf-8", "replace")
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


def _from_error(exc: LlmosError, path: str, crumb_path: str = "") -> Diagnostic:
    where = exc.location or Location(path)
    return Diagnostic("error", exc.message, where, crumb_path, type(exc).__name__)


# ---- policies ---------------------------------------------------------------


def check_policy_doc(doc: Doc) -> tuple[list[Diagnostic], Policy | None]:
    diagnostics = schemas.validate(doc, "policy")
    if diagnostics:
        return diagnostics, None
    policy = compiler.compile_policy(doc)
    for name, action in policy.actions.items():
        diagnostics += _action_problems(doc, ("actions", name), action)
    return diagnostics, policy


def _action_problems(doc: Doc, path: Key, action: ActionPolicy) -> list[Diagnostic]:
    found: list[Diagnostic] = []

    def add(severity: str, message: str, key: str, code: str, hint: str = "") -> None:
        at = (*path, key)
        where = doc.loc(at) if at in doc.locations else doc.loc(path, key=True)
        found.append(Diagnostic(severity, message, where, crumb(at), code, hint))  # type: ignore[arg-type]

    handler = action.handler
    if handler not in BUILTIN_HANDLERS:
        module = handler.partition(":")[0]
        if _find_module(module) is None:
            add(
                "error",
                f"plugin module {module!r} not found",
                "handler",
                "missing-handler",
                "install the module, or use one of: " + ", ".join(sorted(BUILTIN_HANDLERS)),
            )
    if handler == "sqlite":
        if action.database is None:
            add(
                "error",
                "sqlite action without a database",
                "handler",
                "no-database",
                "add `database: path/to/file.db` (relative to the policy)",
            )
        elif not Path(action.database).is_file():
            add("error", f"database {action.database} not found", "database", "no-database")
    if handler == "http":
        if not action.network:
            add(
                "error",
                "http action with network off can reach nothing",
                "handler",
                "http-no-network",
                "set `network: true` and list `urls:`",
            )
        if not action.urls:
            add(
                "error",
                "http action allows no URL",
                "handler",
                "http-no-urls",
                "list allowed URL prefixes under `urls:`",
            )
    for key in ("read", "write"):
        for folder in getattr(action, key):
            if not Path(folder).exists():
                add("warning", f"folder {folder} does not exist", key, "missing-folder")
    if action.persistent and handler != "python":
        add("warning", "`persistent` only applies to the python handler", "persistent", "ignored")
    if action.commands is not None and handler != "shell":
        add("warning", "`commands` only applies to the shell handler", "commands", "ignored")
    return found


def _find_module(name: str) -> object | None:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


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
    checked.diagnostics += _grammar_problems(doc, sound)
    checked.diagnostics += _test_problems(doc, sound, broken)
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


def _constraints(states: dict[str, State]) -> list[tuple[str, GrammarSource]]:
    return [
        (n, s.constraint)
        for n, s in states.items()
        if isinstance(s, GrammarState | TextState) and s.constraint is not None
    ]


def _grammar_problems(doc: Doc, states: dict[str, State]) -> list[Diagnostic]:
    from llmos_grammar import grammar

    found: list[Diagnostic] = []
    for name, source in _constraints(states):
        problems = grammar.validate(source)
        found += [_with_crumb(d, ("states", name)) for d in problems]
        state = states[name]
        if isinstance(state, GrammarState) and not any(d.severity == "error" for d in problems):
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


def _test_problems(doc: Doc, states: dict[str, State], broken: set[str]) -> list[Diagnostic]:
    from llmos_grammar import grammar

    found: list[Diagnostic] = []
    constrained = dict(_constraints(states))
    for name, tests in doc.data.get("tests", {}).items():
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
        for expect in ("accept", "reject"):
            for i, text in enumerate(tests.get(expect, [])):
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
