"""`Runtime`: a compiled machine bound to a model; `run(task)` and `stream(task)`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmos_grammar.constraints import Compiled, Enforcement, MaskBuffer, compile_constraint
from llmos_grammar.ir import (
    ActionPolicy,
    Budgets,
    GrammarState,
    Machine,
    ModelRef,
    Sampling,
    TextState,
)
from llmos_grammar.models import LoadedModel, load_model
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.events import DoneEvent, Event, Result

LogitsProcessor = Callable[[str, str, Any], None]  # (state, state text, logits row) -> None


class Runtime:
    """Runs a `Machine` inside the decoder of a causal LM.

    `model` is a LoadedModel, a ModelRef, a name/path, or None for the spec's
    model. `runner` is anything with `run(action, text) -> ActionResult`
    (default: the policy's ActionRunner, created on first use); `approve`
    answers actions whose policy asks for confirmation. `sampling` and
    `budgets` override the spec's. `logits_processors` may edit each logits
    row in place after the constraint mask.
    """

    def __init__(
        self,
        machine: Machine,
        model: LoadedModel | ModelRef | str | None = None,
        *,
        runner: Any = None,
        approve: Callable[[ActionPolicy, str], bool] | None = None,
        sampling: Sampling | None = None,
        budgets: Budgets | None = None,
        logits_processors: Sequence[LogitsProcessor] = (),
    ) -> None:
        self.machine = machine
        if isinstance(model, LoadedModel):
            self.lm = model
        else:
            self.lm = load_model(model if model is not None else machine.model)
        self.sampling = sampling or machine.sampling
        self.budgets = budgets or machine.budgets
        self.logits_processors = tuple(logits_processors)
        self._runner = runner
        self._owns_runner = runner is None
        self._approve = approve
        self.table = self.lm.token_table()
        self.mask = MaskBuffer(self.lm.vocab_size)
        self.mask_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmos-mask")
        self.constraints: dict[str, Compiled] = {}
        self.enforcement: dict[str, Enforcement] = {}  # which backend enforces each state
        for name, state in machine.states.items():
            if isinstance(state, GrammarState | TextState) and state.constraint is not None:
                close = state.close if isinstance(state, GrammarState) else None
                self.constraints[name], self.enforcement[name] = compile_constraint(
                    state.constraint, self.table, close, name, state.backend
                )

    def runner(self) -> Any:
        """The action runner (the policy's ActionRunner unless one was given)."""
        if self._runner is None:
            from llmos_grammar.actions import ActionRunner

            self._runner = ActionRunner(self.machine.policy, approve=self._approve)
        return self._runner

    def stream(self, task: str) -> Iterator[Event]:
        """Yield events (tokens, transitions, actions, injections) and finally DoneEvent."""
        from llmos_grammar.runtime.loop import Run

        yield from Run(self, task).events()

    def run(self, task: str) -> Result:
        """Run to the end and return the Result."""
        for event in self.stream(task):
            if isinstance(event, DoneEvent):
                return event.result
        raise RuntimeError("the run ended without a result")

    def close(self) -> None:
        """End the action runner's sessions (when this runtime created it)."""
        self.mask_worker.shutdown(wait=True)
        if self._owns_runner and self._runner is not None:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ActionResult", "Runtime"]
