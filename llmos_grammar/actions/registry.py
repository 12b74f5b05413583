"""The handler registry: one entry per built-in handler, with how it runs and stays warm.

Every built-in handler is sandboxed: python and shell run the model's program
in a sandbox; sqlite, files and http run their in-process logic in a sandboxed
worker (`llmos_grammar.actions.worker`).

Entries name their functions as "module:function" so that looking a handler
up (as `llmos check` does) imports no handler code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast, get_args

from llmos_grammar.ir import ActionPolicy

if TYPE_CHECKING:
    from llmos_grammar.results import ActionResult

HandlerName = Literal["python", "shell", "sqlite", "files", "http"]
BUILTIN: tuple[HandlerName, ...] = get_args(HandlerName)


@dataclass(frozen=True)
class Handler:
    """A built-in handler.

    `run` is "module:function". A `sandboxed` handler runs in a sandbox process:
    its function takes `(text, policy, caps, pool)`; the others `(text, policy)`.
    `standby_argv` ("module:function" of policy -> argv) says how a warm standby
    sandbox is started for it; None when it has none. `sandbox_policy`
    ("module:function" of policy -> policy) gives the policy its sandbox runs
    under when that differs from the action's (a worker binds its own files in).
    """

    name: HandlerName
    run: str
    sandboxed: bool = False
    standby_argv: str | None = None
    sandbox_policy: str | None = None

    def function(self) -> Callable[..., ActionResult]:
        """The handler's function (its arguments: see the class docstring)."""
        return cast("Callable[..., ActionResult]", _resolve(self.run))

    def standby(self, policy: ActionPolicy) -> tuple[str, list[str]] | None:
        """(pool key, argv) of this action's warm standby, or None when it keeps none."""
        if self.standby_argv is None or (self.name == "python" and policy.persistent):
            return None
        argv = cast("Callable[[ActionPolicy], list[str]]", _resolve(self.standby_argv))
        return standby_key(policy), argv(policy)

    def standby_policy(self, policy: ActionPolicy) -> ActionPolicy:
        """The policy this action's (standby) sandbox runs under."""
        if self.sandbox_policy is None:
            return policy
        inner = cast("Callable[[ActionPolicy], ActionPolicy]", _resolve(self.sandbox_policy))
        return inner(policy)


def standby_key(policy: ActionPolicy) -> str:
    """The warm-standby pool key of one action: its handler and its name."""
    return f"{policy.handler}:{policy.name}"


def _resolve(target: str) -> object:
    """The object that "module:function" names (each caller says which function type)."""
    module, _, name = target.partition(":")
    found: object = getattr(importlib.import_module(module), name)
    return found


_PKG = "llmos_grammar.actions"
_WORKER: tuple[str, bool, str, str] = (
    f"{_PKG}.worker:run_worker",
    True,
    f"{_PKG}.worker:worker_argv",
    f"{_PKG}.worker:sandbox_policy",
)
HANDLERS: dict[HandlerName, Handler] = {
    "python": Handler(
        "python", f"{_PKG}.python:run_python", True, f"{_PKG}.interpreter:program_argv"
    ),
    "shell": Handler("shell", f"{_PKG}.shell:run_shell", True, f"{_PKG}.shell:shell_argv"),
    "sqlite": Handler("sqlite", *_WORKER),
    "files": Handler("files", *_WORKER),
    "http": Handler("http", *_WORKER),
}


def handler(name: str) -> Handler | None:
    """The built-in handler `name`; None for a plugin ("module:function")."""
    return next((entry for key, entry in HANDLERS.items() if key == name), None)
