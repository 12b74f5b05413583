"""Held-out accuracy before and after training, through `llmos-eval`'s code path."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from llmos_grammar.eval.runner import Evaluation
from llmos_grammar.eval.tasks import TaskSet
from llmos_grammar.ir import Machine
from llmos_grammar.models import LoadedModel


def held_out(
    machine: Machine,
    lm: LoadedModel,
    taskset: TaskSet,
    *,
    label: str,
    batch: int = 8,
    progress: bool = True,
) -> Evaluation:
    """`evaluate` (what llmos-eval runs) with the spec's own sampling, one sample per task."""
    from llmos_grammar.eval import Scorer, evaluate
    from llmos_grammar.eval.scorers import python_action
    from llmos_grammar.runtime import Runtime

    tests = any(t.scorer == "tests" for t in taskset.tasks)
    scorer = Scorer(machine, action=python_action(machine) if tests else None)
    runtime = Runtime(machine, lm)
    try:
        return evaluate(runtime, scorer, taskset, label=label, batch=batch, progress=progress)
    finally:
        runtime.close()
        scorer.close()


@dataclass(frozen=True)
class Paired:
    """Accuracy before and after on the same tasks, and a bootstrap interval of the change."""

    before: float
    after: float
    low: float  # 2.5th percentile of (after - before) over resampled task sets
    high: float  # 97.5th percentile
    gained: int  # tasks solved after but not before
    lost: int  # tasks solved before but not after

    def to_json(self) -> dict[str, object]:
        return {
            "before": self.before,
            "after": self.after,
            "change": self.after - self.before,
            "change_95": [self.low, self.high],
            "gained": self.gained,
            "lost": self.lost,
        }


def paired_bootstrap(
    before: Sequence[bool], after: Sequence[bool], resamples: int = 10_000, seed: int = 0
) -> Paired:
    """A paired bootstrap over tasks: resample task indices, recompute the accuracy change."""
    if len(before) != len(after) or not before:
        raise ValueError("before and after must score the same, non-empty task list")
    n = len(before)
    diffs = [int(a) - int(b) for b, a in zip(before, after, strict=True)]
    rng = random.Random(seed)
    changes = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return Paired(
        before=sum(before) / n,
        after=sum(after) / n,
        low=changes[int(0.025 * (resamples - 1))],
        high=changes[int(0.975 * (resamples - 1))],
        gained=sum(1 for d in diffs if d > 0),
        lost=sum(1 for d in diffs if d < 0),
    )


def solved(evaluation: Evaluation) -> list[bool]:
    """Whether each task of an evaluation was solved, in task order."""
    return [result.solved for result in evaluation.results]
