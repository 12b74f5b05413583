"""Run actions: one at a time (`run_action`) or for a whole run (`ActionRunner`, with
approval, persistent python sessions and warm standby sandboxes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from llmos_grammar.action_policy import ActionPolicy
from llmos_grammar.actions.approval import needs_approval
from llmos_grammar.actions.registry import handler
from llmos_grammar.errors import ActionError
from llmos_grammar.ir import Policy
from llmos_grammar.results import ActionResult

if TYPE_CHECKING:
    from llmos_grammar.actions.python import PythonSession
    from llmos_grammar.sandbox.probe import Capabilities
    from llmos_grammar.sandbox.standby import StandbyPool


# A lone surrogate (a byte that was not UTF-8, read with surrogateescape) cannot be sent to
# a handler as UTF-8; it becomes U+FFFD before the text is approved or run.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _runnable(text: str) -> str:
    """`text` as it is run and shown for approval: lone surrogates replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _dispatch(
    policy: ActionPolicy, text: str, caps: Capabilities | None, pool: StandbyPool | None = None
) -> ActionResult:
    entry = handler(policy.handler)
    if entry is None:
        from llmos_grammar.actions.plugin import load_plugin, run_plugin

        return run_plugin(load_plugin(policy.handler), text, policy)
    run = entry.function()
    result: ActionResult = run(text, policy, caps, pool) if entry.sandboxed else run(text, policy)
    return result


def run_action(
    policy: ActionPolicy, text: str, *, caps: Capabilities | None = None
) -> ActionResult:
    """Run one action once, with no approval step and no persistent session."""
    return _dispatch(policy, _runnable(text), caps)


class ActionRunner:
    """Runs the actions of one policy for one run; holds persistent sessions until `close`.

    With `warm=True` (the default) every action of a built-in handler keeps a
    standby sandbox ready, from construction on (see
    `llmos_grammar.sandbox.standby`), so actions skip start-up; `warm=False`
    starts each one cold.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        approve: Callable[[ActionPolicy, str], bool] | None = None,
        caps: Capabilities | None = None,
        warm: bool = True,
    ) -> None:
        self.policy = policy
        self.approve = approve
        self.caps = caps
        self._sessions: dict[str, PythonSession] = {}
        self._pool: StandbyPool | None = None
        if warm:
            from llmos_grammar.sandbox.standby import StandbyPool

            self._pool = StandbyPool(caps)
            self._prewarm(self._pool)

    def run(self, action: str, text: str) -> ActionResult:
        """Run `text` with the action named `action`; refusals come back as results."""
        ap = self.policy.actions.get(action)
        if ap is None:
            known = ", ".join(sorted(self.policy.actions)) or "none"
            raise ActionError(f"no action {action!r} in policy {self.policy.path} (known: {known})")
        text = _runnable(text)
        if needs_approval(ap):
            if self.approve is None:
                return ActionResult(exit_code=None, refused="needs approval and no approver is set")
            if not self.approve(ap, text):
                return ActionResult(exit_code=None, refused="not approved")
        if ap.handler == "python" and ap.persistent:
            return self._session(ap).run(text)
        return _dispatch(ap, text, self.caps, self._pool)

    def _prewarm(self, pool: StandbyPool) -> None:
        for ap in self.policy.actions.values():
            entry = handler(ap.handler)
            standby = entry.standby(ap) if entry is not None else None
            if entry is not None and standby is not None:
                pool.prepare(*standby, entry.standby_policy(ap))

    def _session(self, ap: ActionPolicy) -> PythonSession:
        from llmos_grammar.actions.python import PythonSession

        session = self._sessions.get(ap.name)
        if session is None:
            session = PythonSession(ap, self.caps)
            self._sessions[ap.name] = session
        return session

    def close(self) -> None:
        """End persistent sessions and everything they started."""
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> ActionRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
