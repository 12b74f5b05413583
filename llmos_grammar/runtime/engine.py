"""`Runtime`: a compiled machine bound to a model; `run`, `stream`, `run_batch`, `stream_batch`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypedDict

from llmos_grammar.constraints import (
    Compiled,
    Enforcement,
    MaskBuffer,
    TokenTable,
    compile_constraint,
)
from llmos_grammar.engines import Engine, engine_entry
from llmos_grammar.ir import (
    ActionPolicy,
    Budgets,
    GrammarState,
    Machine,
    ModelRef,
    Sampling,
    TextState,
)
from llmos_grammar.models import LoadedModel
from llmos_grammar.results import ActionResult, Runner
from llmos_grammar.runtime.batch import Batch, Job
from llmos_grammar.runtime.events import DoneEvent, Event, Result, RowEvent
from llmos_grammar.runtime.token_decode import LogitsProcessor

ACTION_THREADS = 16


class RuntimeOptions(TypedDict, total=False):
    """The keyword arguments of `Runtime` (a Session passes them on)."""

    runner: Runner | None
    approve: Callable[[ActionPolicy, str], bool] | None
    sampling: Sampling | None
    budgets: Budgets | None
    logits_processors: Sequence[LogitsProcessor]
    engine: str | None
    engine_args: Mapping[str, str] | None
    details: bool


def compile_states(
    machine: Machine, table: TokenTable
) -> tuple[dict[str, Compiled], dict[str, Enforcement]]:
    """Every constrained state's grammar compiled for a token table, and the backend that
    enforces each."""
    constraints: dict[str, Compiled] = {}
    enforcement: dict[str, Enforcement] = {}
    for name, state in machine.states.items():
        if isinstance(state, GrammarState | TextState) and state.constraint is not None:
            close = state.close if isinstance(state, GrammarState) else None
            constraints[name], enforcement[name] = compile_constraint(
                state.constraint, table, close, name, state.backend
            )
    return constraints, enforcement


class Runtime:
    """Runs a `Machine` inside the decoder of a causal LM, one task or many at once.

    `model` is a LoadedModel, a ModelRef, a name/path, or None for the spec's
    model. `runner` is anything with `run(action, text) -> ActionResult` and
    `close()` (default: the policy's ActionRunner, created on first use);
    `approve` answers actions whose policy asks for confirmation (one question
    at a time, even when several rows reach such an action). `sampling` and
    `budgets` override the spec's. `logits_processors` may edit each logits
    row in place after the constraint mask. `engine` names a registered engine
    (default: the spec's, `auto`) and `engine_args` are its arguments.
    `details` records what the trace viewer shows of each step: a sampled
    token's probability, the likeliest alternatives, the mask's size and time
    (`TokenEvent.detail`), and token healing (`HealedEvent`); off, a run pays
    nothing for them.

    The engine starts on first use and stays for the runtime's life: every run,
    batch and session of the runtime opens its rows there. `close()` (or a
    `with` block) closes the engine, the model when the runtime loaded it, and
    the action runner when the runtime made it.

    Actions of a batch run on worker threads; calls of one action (by name) are
    serialized, because a persistent python session and the action's warm
    standby sandbox serve one call at a time.
    """

    def __init__(
        self,
        machine: Machine,
        model: LoadedModel | ModelRef | str | None = None,
        *,
        runner: Runner | None = None,
        approve: Callable[[ActionPolicy, str], bool] | None = None,
        sampling: Sampling | None = None,
        budgets: Budgets | None = None,
        logits_processors: Sequence[LogitsProcessor] = (),
        engine: str | None = None,
        engine_args: Mapping[str, str] | None = None,
        details: bool = False,
    ) -> None:
        self.machine = machine
        self.details = details
        self._owns_model = not isinstance(model, LoadedModel)
        if isinstance(model, LoadedModel):
            self.lm = model
        else:
            from llmos_grammar.engines.select import choose, load_for

            ref = model if model is not None else machine.model
            ref = ModelRef(name=ref) if isinstance(ref, str) else ref
            name = choose(engine or machine.engine, ref, engine_args=engine_args)
            self.lm = load_for(name, ref, engine_args)
        try:
            self.capabilities = engine_entry(self.lm.engine).capabilities
            if logits_processors and self.capabilities.output != "logits":
                raise ValueError(
                    f"logits processors need an engine that gives logits, not {self.lm.engine}"
                )
            self._compile(machine)
        except BaseException:
            self._close_model()  # a model this runtime loaded (a vLLM server) ends with it
            raise
        self._engine: Engine | None = None
        self.sampling = sampling or machine.sampling
        self.budgets = budgets or machine.budgets
        self.logits_processors: Sequence[LogitsProcessor] = tuple(logits_processors)
        self._runner = runner
        self._owns_runner = runner is None
        self._approve = approve
        self._lock = threading.Lock()  # the runner, the action locks, approvals
        self._action_locks: dict[str, threading.Lock] = {}
        self._actions: ThreadPoolExecutor | None = None
        self.masks = MaskBuffer(self.table.vocab_size)
        self.mask_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmos-mask")

    def _compile(self, machine: Machine) -> None:
        """Every constrained state's grammar, compiled for the model's tokenizer."""
        self.table = self.lm.token_table()
        # which backend enforces each state beside each state's compiled constraint
        self.constraints, self.enforcement = compile_states(machine, self.table)

    # ---- runs -------------------------------------------------------------------
    def stream(self, task: str) -> Iterator[Event]:
        """Yield events (tokens, transitions, actions, injections) and finally DoneEvent."""
        for item in Batch(self, [Job(0, 0, task)], 1).events():
            yield item.event

    def run(self, task: str) -> Result:
        """Run to the end and return the Result."""
        result: Result | None = None
        for event in self.stream(task):  # to its end, so that the row is given back
            if isinstance(event, DoneEvent):
                result = event.result
        if result is None:
            raise RuntimeError("the run ended without a result")
        return result

    def stream_batch(
        self,
        tasks: Sequence[str],
        samples: int = 1,
        batch: int = 8,
        sampling: Sampling | None = None,
    ) -> Generator[RowEvent, None, None]:
        """Run every task `samples` times, up to `batch` rows in each forward pass.

        Yields each row's events as they happen; the last event of each
        (task, sample) is its DoneEvent. Rows join as others finish. With a
        seed (in `sampling` or the spec's), row (task_index, sample) samples
        from its own generator seeded from (seed, task_index, sample).
        """
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        jobs = [Job(t, s, task) for t, task in enumerate(tasks) for s in range(samples)]
        yield from Batch(self, jobs, batch, sampling).events()

    def run_batch(
        self,
        tasks: Sequence[str],
        samples: int = 1,
        batch: int = 8,
        sampling: Sampling | None = None,
    ) -> list[list[Result]]:
        """Results as `results[task_index][sample]`."""
        out: list[list[Result | None]] = [[None] * samples for _ in tasks]
        for item in self.stream_batch(tasks, samples, batch, sampling):
            if isinstance(item.event, DoneEvent):
                out[item.task_index][item.sample] = item.event.result
        return [[r for r in row if r is not None] for row in out]

    # ---- what runs need (RunHost) ----------------------------------------------------
    @property
    def engine_name(self) -> str:
        """The registered engine this runtime decodes with (shown to people)."""
        return self.lm.engine

    def engine(self) -> Engine:
        """The runtime's engine, started on first use and kept until `close`: every batch,
        run and session of this runtime opens its rows there. Its rows start with the
        spec's prompt before the task, which an engine may compute once for all."""
        if self._engine is None:
            from llmos_grammar.engines import start_engine
            from llmos_grammar.runtime.prompt import task_free_ids

            prefix = task_free_ids(self.machine.prompt, self.lm.tokenizer)
            self._engine = start_engine(self.lm, prefix)
        return self._engine

    def runner(self) -> Runner:
        """The action runner (the policy's ActionRunner unless one was given)."""
        with self._lock:
            if self._runner is None:
                from llmos_grammar.actions import ActionRunner

                approve = self._serialized_approve() if self._approve is not None else None
                self._runner = ActionRunner(self.machine.policy, approve=approve)
            return self._runner

    def call_action(self, action: str, text: str) -> ActionResult:
        """Run one action; calls of the same action wait for each other."""
        runner = self.runner()
        with self._lock:
            lock = self._action_locks.setdefault(action, threading.Lock())
        with lock:
            result: ActionResult = runner.run(action, text)
            return result

    def submit_action(self, action: str, text: str) -> Future[ActionResult]:
        """`call_action` on a worker thread."""
        self.runner()  # created here, on the calling thread
        if self._actions is None:
            self._actions = ThreadPoolExecutor(ACTION_THREADS, thread_name_prefix="llmos-action")
        return self._actions.submit(self.call_action, action, text)

    def abort_actions(self, running: Sequence[Future[ActionResult]]) -> None:
        """Stop running actions (the runner's close kills their sandboxes), end their threads."""
        for future in running:
            future.cancel()
        self._close_runner(force=True)
        wait(running)
        if self._actions is not None:
            self._actions.shutdown(wait=True)
            self._actions = None

    def _serialized_approve(self) -> Callable[[ActionPolicy, str], bool]:
        approve = self._approve
        assert approve is not None
        asking = threading.Lock()

        def ask(policy: ActionPolicy, text: str) -> bool:
            with asking:
                return approve(policy, text)

        return ask

    # ---- lifetime ---------------------------------------------------------------
    def _close_runner(self, force: bool = False) -> None:
        with self._lock:
            runner = self._runner
            if runner is None or not (self._owns_runner or force):
                return
            if self._owns_runner:
                self._runner = None
        runner.close()

    def close(self) -> None:
        """End the threads, close the engine, the model (when this runtime loaded it) and
        the action runner's sessions (when this runtime created it). Once is enough."""
        if self._actions is not None:
            self._actions.shutdown(wait=True)
            self._actions = None
        self.mask_worker.shutdown(wait=True)
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()
        self._close_model()
        self._close_runner()

    def _close_model(self) -> None:
        if self._owns_model:
            self.lm.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ActionResult", "RowEvent", "Runtime", "compile_states"]
