"""Plugin handlers named `module:function`, called as `fn(text, policy) -> ActionResult`."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from llmos_grammar.errors import ActionError
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult

PluginFn = Callable[[str, ActionPolicy], ActionResult]


def load_plugin(spec: str) -> PluginFn:
    """Import `module:function`; ActionError with what to fix when that fails."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ActionError(f"handler {spec!r}: expected a known handler or `module:function`")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ActionError(f"handler {spec!r}: cannot import {module_name}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ActionError(f"handler {spec!r}: {module_name} has no function {attr!r}")
    return fn


def run_plugin(fn: PluginFn, text: str, policy: ActionPolicy) -> ActionResult:
    """Call the plugin; anything but an ActionResult is an error, exceptions become stderr."""
    try:
        result = fn(text, policy)
    except Exception as exc:  # a plugin's failure is the action's failure, not the runtime's
        return ActionResult(stderr=f"{type(exc).__name__}: {exc}\n", exit_code=1)
    if not isinstance(result, ActionResult):
        raise ActionError(
            f"handler {policy.handler!r} returned {type(result).__name__}, not ActionResult"
        )
    return result
