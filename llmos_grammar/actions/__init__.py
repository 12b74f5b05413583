"""Action handlers (python, shell, sqlite, files, http, plugins) behind one runner.

Every built-in handler runs in a sandbox process: python and shell run the
model's program there; sqlite, files and http run in a sandboxed worker
(`llmos_grammar.actions.worker`). Plugins run in the runtime process.

The names below load on first use: the sandboxed worker imports
`llmos_grammar.actions.worker_child` through this package, and must pay only
for its own handler, not for the runner, approval and registry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos_grammar.actions.approval import Approver, terminal_approver
    from llmos_grammar.actions.dispatch import ActionRunner, run_action
    from llmos_grammar.actions.registry import HANDLERS
    from llmos_grammar.results import ActionResult

__all__ = [
    "HANDLERS",
    "ActionResult",
    "ActionRunner",
    "Approver",
    "run_action",
    "terminal_approver",
]

_HOMES = {
    "HANDLERS": "llmos_grammar.actions.registry",
    "ActionResult": "llmos_grammar.results",
    "ActionRunner": "llmos_grammar.actions.dispatch",
    "Approver": "llmos_grammar.actions.approval",
    "run_action": "llmos_grammar.actions.dispatch",
    "terminal_approver": "llmos_grammar.actions.approval",
}


def __getattr__(name: str) -> object:
    """Import the module that defines `name` the first time someone asks for it."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
