"""Policy checks: handlers, databases, network and folders."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

from llmos_grammar.actions.registry import HANDLERS
from llmos_grammar.errors import Diagnostic, Severity
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.spec.schemas import crumb
from llmos_grammar.spec.yamldata import mapping
from llmos_grammar.spec.yamldoc import Doc, Key


def action_problems(doc: Doc, path: Key, action: ActionPolicy) -> list[Diagnostic]:
    """Problems of one compiled action entry that the schema cannot see."""
    found: list[Diagnostic] = []

    def add(severity: Severity, message: str, key: str, code: str, hint: str = "") -> None:
        at = (*path, key)
        where = doc.loc(at) if at in doc.locations else doc.loc(path, key=True)
        found.append(Diagnostic(severity, message, where, crumb(at), code, hint))

    handler = action.handler
    if handler not in HANDLERS:
        module = handler.partition(":")[0]
        if _find_module(module) is None:
            add(
                "error",
                f"plugin module {module!r} not found",
                "handler",
                "missing-handler",
                "install the module, or use one of: " + ", ".join(HANDLERS),
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
    raw = mapping(mapping(doc.top.get("actions")).get(str(path[-1]))) if path else {}
    for key, only in HANDLER_KEYS.items():
        if key in raw and handler != only:
            add("warning", f"`{key}` only applies to the {only} handler", key, "ignored")
    if handler in HANDLERS:
        for key in mapping(raw.get("options")):
            message, hint = _option_hint(str(key))
            add("error", message, "options", "builtin-options", hint)
    return found


# Policy keys that only one built-in handler reads.
HANDLER_KEYS = {
    "persistent": "python",
    "site": "python",
    "commands": "shell",
    "body_bytes": "http",
    "json_fields": "http",
}


def _option_hint(key: str) -> tuple[str, str]:
    """(message, hint) for `options: {key: ...}` on a built-in handler."""
    known = [
        f for f in ActionPolicy.__dataclass_fields__ if f not in ("name", "location", "options")
    ]
    if key in known:
        return (
            f"option {key!r} is a policy key of its own",
            f"move it out of `options:` and write `{key}: ...` beside `handler:`",
        )
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean `{close[0]}:`?" if close else "`options:` is for plugin handlers only"
    return f"unknown option {key!r} for a built-in handler", hint


def _find_module(name: str) -> object | None:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
