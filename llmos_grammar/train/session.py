"""One training run: held-out eval before, GRPO steps, the adapter, eval after, log and plot."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.eval.tasks import TaskSet
from llmos_grammar.ir import Machine
from llmos_grammar.models import LoadedModel
from llmos_grammar.train.adapter import TRAIN_INFO
from llmos_grammar.train.heldout import Paired, held_out, paired_bootstrap, solved
from llmos_grammar.train.pipeline import TrainConfig

if TYPE_CHECKING:
    from llmos_grammar.eval.runner import Evaluation
    from llmos_grammar.results import Runner
    from llmos_grammar.train.steplog import StepRecord

LOG_FILE = "train_log.jsonl"
PLOT_FILE = "rewards.png"


@dataclass
class TrainOutcome:
    """What a run produced: per-step records, held-out accuracy, where the files are."""

    out: Path
    records: list[StepRecord] = field(default_factory=list)
    held_out: Paired | None = None
    seconds: float = 0.0
    interrupted: bool = False
    main: bool = True  # the process that wrote the files (process 0 under accelerate)

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
    config: TrainConfig,
    out: Path,
    *,
    eval_set: TaskSet | None = None,
    progress: bool = True,
    runner: Runner | None = None,
) -> TrainOutcome:
    """Train a LoRA adapter on `tasks` with GRPO and save it in `out`."""
    from accelerate import PartialState
    from transformers import set_seed

    from llmos_grammar.eval import Scorer
    from llmos_grammar.eval.scorers import python_action
    from llmos_grammar.train.live import decoding
    from llmos_grammar.train.pipeline import build_trainer, require_trl, trained
    from llmos_grammar.train.rewards import RewardLog, reward_functions
    from llmos_grammar.train.rollout import Rollout
    from llmos_grammar.train.steplog import StepLog

    require_trl()
    # cpu=True lets a torchrun-style launch (accelerate launch --multi_gpu) run CPU processes
    main = PartialState(cpu=lm.device.type == "cpu").is_main_process
    outcome = TrainOutcome(out, main=main)
    set_seed(config.seed)
    started = time.perf_counter()
    before = None
    if main and eval_set is not None:
        before = _eval(machine, lm, eval_set, "before", config, progress)
    tests = any(t.scorer == "tests" for t in tasks.tasks)
    scorer = Scorer(machine, action=python_action(machine) if tests else None)
    log = RewardLog()
    rollout = Rollout(
        machine, batch=config.batch, temperature=config.temperature, seed=config.seed, runner=runner
    )
    steplog = StepLog(outcome.log_path, config.steps, log, progress, rollout)
    rewards = reward_functions(config.terms, scorer, tasks.tasks, log)
    trainer = build_trainer(lm, tasks.tasks, config, out, rollout, rewards, [steplog.callback()])
    try:
        trainer.train()
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        steplog.end()
        rollout.close()
        scorer.close()
    trainer.save_model(str(out))
    outcome.records = steplog.records
    if main and before is not None and eval_set is not None:
        _save_eval(out / "eval_before.json", machine, eval_set, before)
    if main and before is not None and eval_set is not None and not outcome.interrupted:
        with decoding(trainer.model):
            after = _eval(machine, trained(machine, trainer), eval_set, "after", config, progress)
        _save_eval(out / "eval_after.json", machine, eval_set, after)
        outcome.held_out = paired_bootstrap(solved(before), solved(after), seed=config.seed)
    outcome.seconds = time.perf_counter() - started
    if main:
        _write(outcome, machine, tasks, config, eval_set)
    return outcome


def _eval(
    machine: Machine,
    lm: LoadedModel,
    eval_set: TaskSet,
    label: str,
    config: TrainConfig,
    progress: bool,
) -> Evaluation:
    return held_out(machine, lm, eval_set, label=label, batch=config.batch, progress=progress)


def _save_eval(path: Path, machine: Machine, eval_set: TaskSet, evaluation: Evaluation) -> None:
    """The held-out evaluation as llmos-eval's --json document."""
    from llmos_grammar.eval.report import document

    doc = document(machine.path, eval_set.name, evaluation)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def _write(
    outcome: TrainOutcome,
    machine: Machine,
    tasks: TaskSet,
    config: TrainConfig,
    eval_set: TaskSet | None,
) -> None:
    from llmos_grammar.train.plot import plot_rewards

    if outcome.records:
        plot_rewards(outcome.records, str(outcome.plot_path), f"{machine.name}: GRPO reward")
    info = {
        "spec": machine.path,
        "model": machine.model.name,
        "tasks": tasks.name,
        "config": {**asdict(config), "terms": [asdict(t) for t in config.terms]},
        "steps_logged": len(outcome.records),
        "seconds": round(outcome.seconds, 1),
        "interrupted": outcome.interrupted,
        "eval": None
        if outcome.held_out is None or eval_set is None
        else {"tasks": eval_set.name, "n": len(eval_set.tasks), **outcome.held_out.to_json()},
    }
    (outcome.out / TRAIN_INFO).write_text(json.dumps(info, indent=1) + "\n")
