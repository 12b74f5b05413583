"""What one served row's run needs (a `RunHost`): its machine and limits, the group's engine, its
own actions.

Each request's rows run their actions with a runner of their own (a persistent
interpreter is one client's, never another's), created at the first action;
a kept row hands its runner to the request that continues it. Actions whose
policy asks for confirmation are refused with the reason unless the server
approves them (`--yes` approves `confirm: ask`; nobody answers `always`).
`abort_actions` kills the row's sandboxes in flight at once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from llmos_grammar.constraints import Compiled, MaskBuffer, TokenTable
from llmos_grammar.engines import Engine
from llmos_grammar.ir import ActionPolicy, Budgets, Machine, Sampling
from llmos_grammar.models import LoadedModel
from llmos_grammar.results import ActionResult, Runner
from llmos_grammar.runtime.token_decode import LogitsProcessor
from llmos_grammar.sandbox.inflight import Scope, running_in


@dataclass
class LoopParts:
    """What every row of one engine's loop shares."""

    lm: LoadedModel
    engine: Engine
    table: TokenTable
    masks: MaskBuffer
    mask_worker: ThreadPoolExecutor
    actions: ThreadPoolExecutor
    yes: bool
    in_flight: set[Future[ActionResult]]  # actions running on any row (for stats and tests)
    lock: threading.Lock


class RowHost:
    """One served row's host (see the module docstring; implements runtime.host.RunHost)."""

    logits_processors: Sequence[LogitsProcessor] = ()
    details = False

    def __init__(
        self,
        parts: LoopParts,
        machine: Machine,
        constraints: Mapping[str, Compiled],
        budgets: Budgets,
        sampling: Sampling,
        runner: Runner | None = None,
    ) -> None:
        self.parts = parts
        self.machine = machine
        self.lm = parts.lm
        self.table = parts.table
        self.constraints = dict(constraints)
        self.budgets = budgets
        self.sampling = sampling
        self.masks = parts.masks
        self.mask_worker = parts.mask_worker
        self.runner = runner
        self.scope = Scope()

    def engine(self) -> Engine:
        return self.parts.engine

    def call_action(self, action: str, text: str) -> ActionResult:
        """Run one action in this row's sandbox scope; unapproved ones are refused."""
        policy = self.machine.policy.actions.get(action)
        if policy is not None and policy.confirm != "never" and not self._approved(policy):
            return ActionResult(exit_code=None, refused=_refusal(policy))
        runner = self.runner
        if runner is None:
            from llmos_grammar.actions import ActionRunner

            runner = self.runner = ActionRunner(
                self.machine.policy, approve=self._approved_text, warm=False
            )
        with running_in(self.scope):
            return runner.run(action, text)

    def submit_action(self, action: str, text: str) -> Future[ActionResult]:
        future = self.parts.actions.submit(self.call_action, action, text)
        with self.parts.lock:
            self.parts.in_flight.add(future)
        future.add_done_callback(self._done)
        return future

    def abort_actions(self, running: Sequence[Future[ActionResult]]) -> None:
        """Kill this row's sandboxes now; its runner closes once its actions returned."""
        self.scope.kill()
        for future in running:
            future.cancel()
        runner, self.runner = self.runner, None
        if runner is not None:
            closing = threading.Thread(
                target=_close_after, args=(runner, list(running)), name="llmos-serve-close"
            )
            closing.start()

    def _approved(self, policy: ActionPolicy) -> bool:
        return self.parts.yes and policy.confirm == "ask"

    def _approved_text(self, policy: ActionPolicy, text: str) -> bool:
        return self._approved(policy)

    def _done(self, future: Future[ActionResult]) -> None:
        with self.parts.lock:
            self.parts.in_flight.discard(future)


def _refusal(policy: ActionPolicy) -> str:
    if policy.confirm == "always":
        return (
            f"action {policy.name!r} needs a person's approval each time (confirm: always), "
            "and a server has nobody to ask"
        )
    return (
        f"action {policy.name!r} needs approval (confirm: ask), and this server was not "
        "started with --yes"
    )


def _close_after(runner: Runner, running: list[Future[ActionResult]]) -> None:
    wait(running)
    runner.close()
