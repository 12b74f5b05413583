"""The one front end: a loaded spec or policy document -> (IR or None, every diagnostic).

`llmos check`, `llmos_grammar.load` and `load_policy` are thin callers of
`compile_spec` and `compile_policy`. The IR is built first; the checks then
read the IR, and the document only for locations.
"""

from __future__ import annotations

from pathlib import Path

from llmos_grammar.errors import Diagnostic, LlmosError
from llmos_grammar.ir import Machine, Policy, State
from llmos_grammar.paths import default_policy
from llmos_grammar.spec import build, schemas, yamldoc
from llmos_grammar.spec.checks.backends import backend_problems
from llmos_grammar.spec.checks.grammars import grammar_problems, test_problems
from llmos_grammar.spec.checks.machine import Analysis
from llmos_grammar.spec.checks.policy import action_problems
from llmos_grammar.spec.checks.prompt import prompt_problems
from llmos_grammar.spec.checks.whitespace import whitespace_error
from llmos_grammar.spec.schemas import crumb
from llmos_grammar.spec.yamldata import YamlMap, mapping
from llmos_grammar.spec.yamldoc import Doc, Key

NO_POLICY = Policy(path="", actions={})


def compile_spec(doc: Doc) -> tuple[Machine | None, list[Diagnostic]]:
    """The Machine of a spec document, or None when any error was found; all diagnostics."""
    found = schemas.validate(doc, "spec")
    if found:
        return None, found
    policy, policy_text = _spec_policy(doc, found)
    states, broken = _states(doc, found, policy)
    machine = build.build_machine(doc, states, policy or NO_POLICY, policy_text)
    found += Analysis(doc, machine, policy_known=policy is not None).run()
    found += prompt_problems(doc, machine.prompt)
    sound = {n: s for n, s in states.items() if n not in broken}
    found += grammar_problems(doc, sound, broken)
    found += test_problems(doc, machine.tests, sound, broken)
    found += backend_problems(doc, sound, machine.tests, broken)
    if policy is None or any(d.severity == "error" for d in found):
        return None, found
    return machine, found


def compile_policy(doc: Doc) -> tuple[Policy | None, list[Diagnostic]]:
    """The Policy of a policy document (None when it breaks the schema); all diagnostics."""
    found = schemas.validate(doc, "policy")
    if found:
        return None, found
    policy = build.build_policy(doc)
    for name, action in policy.actions.items():
        found += action_problems(doc, ("actions", name), action)
    return policy, found


def _spec_policy(doc: Doc, out: list[Diagnostic]) -> tuple[Policy | None, str]:
    raw = doc.top.get("policy")
    path = Path(doc.file).resolve().parent / raw if isinstance(raw, str) else default_policy()
    try:
        policy_doc = yamldoc.load(path)
    except LlmosError as exc:
        where = doc.loc(("policy",)) if raw else doc.loc(())
        hint = f"fix or create {path}"
        out.append(Diagnostic("error", f"policy: {exc.message}", where, "policy", "policy", hint))
        return None, ""
    policy, problems = compile_policy(policy_doc)
    out.extend(problems)
    return policy, policy_doc.text


def _states(
    doc: Doc, out: list[Diagnostic], policy: Policy | None
) -> tuple[dict[str, State], set[str]]:
    """All states, and the names of those whose constraint could not be loaded (or whose
    JSON whitespace policy is wrong)."""
    states: dict[str, State] = {}
    broken: set[str] = set()
    spec_space = whitespace_error(doc, (), doc.top)
    out.extend([spec_space] if spec_space is not None else [])
    for name, value in mapping(doc.top.get("states")).items():
        path: Key = ("states", name)
        raw = mapping(value)
        given = [k for k in build.CONSTRAINT_KEYS if k in raw]
        problem = _constraint_problem(doc, path, raw, given)
        own_space = whitespace_error(doc, path, raw)
        out.extend([own_space] if own_space is not None else [])
        if own_space is not None or (spec_space is not None and "json_whitespace" not in raw):
            broken.add(name)
        source = None
        if problem is not None:
            out.append(problem)
            broken.add(name)
        elif given:
            try:
                source = build.constraint_source(doc, path, raw, policy)
            except LlmosError as exc:
                at = (*path, given[0])
                where = exc.location if exc.location and exc.location.line else doc.loc(at)
                out.append(Diagnostic("error", exc.message, where, crumb(at), type(exc).__name__))
                broken.add(name)
        states[name] = build.build_state(doc, name, raw, source)
    return states, broken


def _constraint_problem(doc: Doc, path: Key, raw: YamlMap, given: list[str]) -> Diagnostic | None:
    if len(given) > 1:
        return Diagnostic(
            "error",
            f"more than one constraint: {', '.join(given)}",
            doc.loc((*path, given[1]), key=True),
            crumb(path),
            "constraint",
            "keep one of grammar, lark, regex, json_schema, derive",
        )
    if raw["type"] == "grammar" and not given:
        return Diagnostic(
            "error",
            "grammar state without a grammar",
            doc.loc(path, key=True),
            crumb(path),
            "constraint",
            "add one of grammar, lark, regex, json_schema, derive: policy",
        )
    return None
