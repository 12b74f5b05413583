"""What a run needs from the runtime that hosts it (the `Runtime` implements this)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from llmos_grammar.constraints import Compiled, TokenTable
from llmos_grammar.engines import AnyEngine
from llmos_grammar.ir import Budgets, Machine, Sampling
from llmos_grammar.models import LoadedModel
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.masks import BatchMasks

LogitsProcessor = Callable[[str, str, Any], None]  # (state, state text, logits row) -> None


class RunHost(Protocol):
    machine: Machine
    lm: LoadedModel
    table: TokenTable
    constraints: dict[str, Compiled]
    budgets: Budgets
    sampling: Sampling
    logits_processors: Sequence[LogitsProcessor]
    masks: BatchMasks
    mask_worker: ThreadPoolExecutor

    def new_engine(self) -> AnyEngine:
        """A fresh engine for a batch of rows."""
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
