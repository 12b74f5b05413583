"""The diagnostic codes `llmos-check` can report, found in the source: every string that
reaches the `code` of a `Diagnostic`, directly or through a helper whose parameter is
named `code`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "llmos_grammar"
CHECKED = ("spec", "grammar", "constraints", "eval")  # the packages llmos-check runs
CODE_FIELD = 4  # Diagnostic(severity, message, location, path, code, hint)


def _files() -> Iterator[Path]:
    for folder in CHECKED:
        yield from sorted((PACKAGE / folder).rglob("*.py"))


def _code_params(tree: ast.Module) -> dict[str, int]:
    """Functions of a module that take a `code` parameter -> its position in a call."""
    found = {"Diagnostic": CODE_FIELD}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            names = [a.arg for a in node.args.args]
            if "code" in names:
                skip = 1 if names and names[0] in ("self", "cls") else 0
                found[node.name] = names.index("code") - skip
    return found


def _strings(node: ast.expr, scope: ast.AST) -> Iterator[str]:
    """The literal strings an expression can be: a constant, either side of `a if c else b`,
    or what a local name is assigned in the same function."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body, scope)
        yield from _strings(node.orelse, scope)
    elif isinstance(node, ast.Name):
        for assign in ast.walk(scope):
            if isinstance(assign, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == node.id for t in assign.targets
            ):
                yield from _strings(assign.value, scope)


def _called(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _calls(tree: ast.Module) -> Iterator[tuple[ast.Call, ast.AST]]:
    for scope in ast.walk(tree):
        if isinstance(scope, ast.FunctionDef):
            for node in ast.walk(scope):
                if isinstance(node, ast.Call):
                    yield node, scope


def codes() -> dict[str, str]:
    """Every literal diagnostic code -> the module that reports it (first seen)."""
    found: dict[str, str] = {}
    for path in _files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        params = _code_params(tree)
        for call, scope in _calls(tree):
            position = params.get(_called(call))
            if position is None:
                continue
            value = next((k.value for k in call.keywords if k.arg == "code"), None)
            if value is None and position < len(call.args):
                value = call.args[position]
            for code in _strings(value, scope) if value is not None else ():
                found.setdefault(code, str(path.relative_to(PACKAGE.parent)))
    return found
