"""One training run: held-out eval before, RFT rounds or GRPO steps, the adapter, eval after."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.eval.tasks import TaskSet
from llmos_grammar.ir import Machine
from llmos_grammar.models import LoadedModel
from llmos_grammar.train.adapter import TRAIN_INFO, file_digest
from llmos_grammar.train.heldout import held_out
from llmos_grammar.train.records import Record, write_log
from llmos_grammar.train.settings import TrainSettings
from llmos_grammar.train.stats import PairedChange, paired_evaluations

if TYPE_CHECKING:
    from llmos_grammar.eval.runner import Evaluation
    from llmos_grammar.results import Runner
    from llmos_grammar.runtime.token_decode import LogitsProcessor
    from llmos_grammar.train.loop import Context
    from llmos_grammar.train.policy import Policy

LOG_FILE = "train_log.jsonl"
PLOT_FILE = "progress.png"


@dataclass(frozen=True)
class HeldOut:
    """One evaluation set before and after training."""

    name: str
    tasks: int
    before: Evaluation
    after: Evaluation | None
    paired: PairedChange | None  # None without an evaluation after (interrupted)


@dataclass
class TrainOutcome:
    """What a run produced: per-round (step) records, held-out results, where the files are."""

    out: Path
    records: list[Record] = field(default_factory=list)
    held_out: list[HeldOut] = field(default_factory=list)
    seconds: float = 0.0
    eval_seconds: float = 0.0
    interrupted: bool = False

    @property
    def log_path(self) -> Path:
        return self.out / LOG_FILE

    @property
    def plot_path(self) -> Path:
        return self.out / PLOT_FILE


def run_training(
    machine: Machine,
    lm: LoadedModel,
    tasks: TaskSet,
    settings: TrainSettings,
    out: Path,
    *,
    eval_sets: Sequence[TaskSet] = (),
    progress: bool = True,
    runner: Runner | None = None,
    on_record: Callable[[Record], object] = lambda record: None,
    logits_processors: Sequence[LogitsProcessor] = (),
) -> TrainOutcome:
    """Train a LoRA adapter on `tasks` with `settings.method` and save it in `out`.

    `runner` runs the actions (default: the policy's ActionRunner, closed at the end);
    `logits_processors` edit each logits row while sampling (not in the evaluation)."""
    from llmos_grammar.train.policy import Policy

    started = time.perf_counter()
    outcome = TrainOutcome(out)
    _seed(settings.seed)
    policy = Policy(lm, settings.lora_r, settings.init)
    before = [_eval(machine, policy, s, "before", settings, progress) for s in eval_sets]
    ctx = _context(machine, policy, tasks, settings, runner, progress)
    ctx.logits_processors = logits_processors

    def record(rec: Record) -> None:
        outcome.records.append(rec)
        write_log(outcome.log_path, outcome.records)
        on_record(rec)

    try:
        _train(ctx, record)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        ctx.scorer.close()
        if runner is None:
            ctx.runner.close()
    policy.save(out)
    for taskset, evaluation in zip(eval_sets, before, strict=True):
        after = None
        if not outcome.interrupted:
            after = _eval(machine, policy, taskset, "after", settings, progress)
        outcome.held_out.append(_held_out(out, machine, taskset, evaluation, after, settings))
    outcome.eval_seconds = sum(h.before.wall_s + (h.after.wall_s if h.after else 0.0)
                               for h in outcome.held_out)  # fmt: skip
    outcome.seconds = time.perf_counter() - started
    _write(outcome, machine, tasks, settings)
    return outcome


def _seed(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _context(
    machine: Machine,
    policy: Policy,
    tasks: TaskSet,
    settings: TrainSettings,
    runner: Runner | None,
    progress: bool,
) -> Context:
    from llmos_grammar.actions import ActionRunner
    from llmos_grammar.eval import Scorer
    from llmos_grammar.eval.scorers import python_action
    from llmos_grammar.train.loop import Context, make_optimizer

    tests = any(t.scorer == "tests" for t in tasks.tasks)
    scorer = Scorer(machine, action=python_action(machine) if tests else None)
    return Context(
        machine, policy, scorer, runner or ActionRunner(machine.policy), tasks.tasks, settings,
        make_optimizer(policy, settings.learning_rate), progress,
    )  # fmt: skip


def _train(ctx: Context, record: Callable[[Record], None]) -> None:
    if ctx.settings.method == "rft":
        from llmos_grammar.train.rft import run_rft

        run_rft(ctx, record)
    else:
        from llmos_grammar.train.grpo import run_grpo

        run_grpo(ctx, record)


def _eval(
    machine: Machine,
    policy: Policy,
    taskset: TaskSet,
    label: str,
    settings: TrainSettings,
    progress: bool,
) -> Evaluation:
    """`llmos-eval`'s code path (the spec's own sampling) on the merged policy."""
    with policy.sampling() as lm:
        return held_out(machine, lm, taskset, label=label, batch=settings.rows, progress=progress)


def _held_out(
    out: Path,
    machine: Machine,
    taskset: TaskSet,
    before: Evaluation,
    after: Evaluation | None,
    settings: TrainSettings,
) -> HeldOut:
    from llmos_grammar.eval.report import document

    stem = Path(taskset.name).stem
    for label, evaluation in (("before", before), ("after", after)):
        if evaluation is not None:
            doc = document(machine.path, taskset.name, evaluation)
            text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
            (out / f"eval_{stem}_{label}.json").write_text(text)
    paired = None
    if after is not None and after.results and before.results:
        paired = paired_evaluations(taskset.name, before, after, seed=settings.seed)
    return HeldOut(taskset.name, len(taskset.tasks), before, after, paired)


def _write(
    outcome: TrainOutcome, machine: Machine, tasks: TaskSet, settings: TrainSettings
) -> None:
    """llmos_train.json (what the adapter was trained on and with) and the plot."""
    from llmos_grammar.train.plot import plot_progress

    if outcome.records:
        plot_progress(outcome.records, str(outcome.plot_path), f"{machine.name}: {settings.method}")
    done = len(outcome.records)
    info = {
        "spec": machine.path,
        "spec_key": machine.cache_key,
        "model": machine.model.name,
        "method": settings.method,
        "rounds" if settings.method == "rft" else "steps": done,
        "seed": settings.seed,
        "tasks_file": tasks.name,
        "tasks_hash": _digest(tasks.name),
        "tasks": len(tasks.tasks),
        "init_adapter": settings.init,
        "settings": {**asdict(settings), "terms": [asdict(t) for t in settings.terms]},
        "seconds": round(outcome.seconds, 1),
        "interrupted": outcome.interrupted,
        "eval": [
            h.paired.to_json() if h.paired else {"set": h.name, "tasks": h.tasks}
            for h in outcome.held_out
        ],  # fmt: skip
    }
    (outcome.out / TRAIN_INFO).write_text(json.dumps(info, indent=1) + "\n")


def _digest(name: str) -> str:
    try:
        return file_digest(name)
    except OSError:
        return ""
