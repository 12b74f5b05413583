"""Load a spec or a policy file into the IR, raising with every problem found."""

from __future__ import annotations

from pathlib import Path

from llmos_grammar.errors import Diagnostic, PolicyError, SpecError
from llmos_grammar.ir import Machine, Policy
from llmos_grammar.spec import yamldoc
from llmos_grammar.spec.check import check_file
from llmos_grammar.spec.compile import compile_policy


def load(spec_path: str | Path) -> Machine:
    """The compiled Machine of a spec file; SpecError lists all problems otherwise."""
    checked = check_file(str(spec_path))
    errors = _errors(checked.diagnostics)
    where = errors[0].location if errors else None
    if checked.kind == "policy":
        raise SpecError("this is a policy file; pass a spec (`llmos: 1`)", where)
    if checked.machine is None:
        raise SpecError(_summary(errors), where, checked.diagnostics)
    return checked.machine


def load_policy(policy_path: str | Path) -> Policy:
    """The compiled Policy of a policy file; PolicyError lists all problems otherwise."""
    try:
        doc = yamldoc.load(policy_path)
    except SpecError as exc:
        raise PolicyError(exc.message, exc.location) from None
    policy, found = compile_policy(doc)
    errors = _errors(found)
    if policy is None or errors:
        raise PolicyError(_summary(errors), errors[0].location if errors else None, errors)
    return policy


def _errors(found: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in found if d.severity == "error"]


def _summary(errors: list[Diagnostic]) -> str:
    if not errors:
        return "invalid file"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{errors[0].message}{more}"
