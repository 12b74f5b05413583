"""The handler registry: one entry per built-in handler, with how it runs and stays warm.

Entries name their functions as "module:function" so that looking a handler
up (as `llmos check` does) imports no handler code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from llmos_grammar.ir import ActionPolicy

HandlerName = Literal["python", "shell", "sqlite", "files", "http"]
BUILTIN: tuple[HandlerName, ...] = get_args(HandlerName)


@dataclass(frozen=True)
class Handler:
    """A built-in handler.

    `run` is "module:function". A `sandboxed` handler runs in a sandbox process:
    its function takes `(text, policy, caps, pool)`; the others `(text, policy)`.
    `standby_argv` ("module:function" of policy -> argv) says how a warm standby
    sandbox is started for it; None when it has none.
    """

    name: HandlerName
    run: str
    sandboxed: bool = False
    standby_argv: str | None = None

    def function(self) -> Callable[..., Any]:
        return _resolve(self.run)

    def standby(self, policy: ActionPolicy) -> tuple[str, list[str]] | None:
        """(pool key, argv) of this action's warm standby, or None when it keeps none."""
        if self.standby_argv is None or (self.name == "python" and policy.persistent):
            return None
        argv: list[str] = _resolve(self.standby_argv)(policy)
        return standby_key(policy), argv


def standby_key(policy: ActionPolicy) -> str:
    """The warm-standby pool key of one action: its handler and its name."""
    return f"{policy.handler}:{policy.name}"


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


_PKG = "llmos_grammar.actions"
HANDLERS: dict[HandlerName, Handler] = {
    "python": Handler(
        "python", f"{_PKG}.python:run_python", True, f"{_PKG}.interpreter:program_argv"
    ),
    "shell": Handler("shell", f"{_PKG}.shell:run_shell", True, f"{_PKG}.shell:shell_argv"),
    "sqlite": Handler("sqlite", f"{_PKG}.sqlite:run_sqlite"),
    "files": Handler("files", f"{_PKG}.files:run_files"),
    "http": Handler("http", f"{_PKG}.http:run_http"),
}


def handler(name: str) -> Handler | None:
    """The built-in handler `name`; None for a plugin ("module:function")."""
    return HANDLERS.get(name)  # type: ignore[call-overload]
