"""What a run needs from the runtime that hosts it (the `Runtime` implements this)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from llmos_grammar.constraints import Compiled, MaskBuffer, TokenTable
from llmos_grammar.engines import Engine
from llmos_grammar.ir import Budgets, Machine, Sampling
from llmos_grammar.models import LoadedModel
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.token_decode import LogitsProcessor


class RunHost(Protocol):
    """The runtime as its runs and their drivers see it."""

    machine: Machine
    lm: LoadedModel
    table: TokenTable
    constraints: dict[str, Compiled]
    budgets: Budgets
    sampling: Sampling
    logits_processors: Sequence[LogitsProcessor]
    masks: MaskBuffer
    mask_worker: ThreadPoolExecutor
    details: bool  # runs record StepDetail and HealedEvent (for the trace viewer)

    def engine(self) -> Engine:
        """The engine every row of the host opens on."""
        ...

    def call_action(self, action: str, text: str) -> ActionResult:
        """Run one action (safe to call from several threads at once)."""
        ...

    def submit_action(self, action: str, text: str) -> Future[ActionResult]:
        """`call_action` on a worker thread."""
        ...

    def abort_actions(self, running: Sequence[Future[ActionResult]]) -> None:
        """Stop running actions and end their threads."""
        ...
