"""Load a spec or a policy file into the IR, raising with every problem found."""

from __future__ import annotations

from pathlib import Path

from llmos_grammar.errors import Diagnostic, Location, PolicyError, SpecError
from llmos_grammar.ir import Machine, Policy
from llmos_grammar.spec.check import Checked, check_file
from llmos_grammar.spec.checks.policy import check_policy_doc
from llmos_grammar.spec.yamldoc import load as load_yaml


def load(spec_path: str | Path) -> Machine:
    """The compiled Machine of a spec file; SpecError lists all problems otherwise."""
    checked = check_file(str(spec_path))
    if checked.kind == "policy":
        raise SpecError("this is a policy file; pass a spec (`llmos: 1`)", _first(checked))
    if checked.machine is None:
        raise SpecError(_summary(checked.diagnostics), _first(checked), checked.diagnostics)
    return checked.machine


def load_policy(policy_path: str | Path) -> Policy:
    """The compiled Policy of a policy file; PolicyError lists all problems otherwise."""
    try:
        doc = load_yaml(policy_path)
    except SpecError as exc:
        raise PolicyError(exc.message, exc.location) from None
    diagnostics, policy = check_policy_doc(doc)
    errors = [d for d in diagnostics if d.severity == "error"]
    if policy is None or errors:
        raise PolicyError(_summary(errors), errors[0].location if errors else None, errors)
    return policy


def _first(checked: Checked) -> Location | None:
    errors = [d for d in checked.diagnostics if d.severity == "error"]
    return errors[0].location if errors else None


def _summary(diagnostics: list[Diagnostic]) -> str:
    errors = [d for d in diagnostics if d.severity == "error"]
    if not errors:
        return "invalid file"
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first.message}{more}"
