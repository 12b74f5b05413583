"""Rewards from execution: the `llmos-eval` scorers, plus optional shaping terms.

Each term is one TRL reward function (so TRL logs it by name). A term never
raises: a row whose handler fails gets 0, and the failure is kept with its
reason in a RewardLog for the step's log line.
"""

from __future__ import annotations

import operator
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import SupportsIndex, TypedDict

from llmos_grammar.errors import LlmosError
from llmos_grammar.eval.outcomes import action_outcome
from llmos_grammar.eval.scorers import Scorer
from llmos_grammar.eval.tasks import Task
from llmos_grammar.runtime.events import Result
from llmos_grammar.train.rollout import RESULT_KEY

TASK_KEY = "task_index"  # the dataset column naming each row's task
# TRL calls a reward function with the completions and every dataset and rollout column
# by keyword (prompts=, completion_ids=, task_index=, llmos_result=, ...); None: no reward.
RewardFunction = Callable[..., list[float | None]]


@dataclass(frozen=True)
class RewardTerm:
    """A named reward term and its weight in the sum TRL normalizes per group."""

    name: str
    weight: float


def _correct(scorer: Scorer, task: Task, result: Result, log: RewardLog) -> float:
    """1 when the task's scorer (answer or tests) says solved, else 0."""
    score = scorer.score(task, result)
    with log.lock:
        log.outcomes[score.outcome] += 1
    return 1.0 if score.solved else 0.0


def _ran(scorer: Scorer, task: Task, result: Result, log: RewardLog) -> float:
    """1 when the run's last action exited 0 (the program ran without error)."""
    if not result.actions:
        return 0.0
    return 1.0 if action_outcome(result.actions[-1].result) is None else 0.0


def _stopped(scorer: Scorer, task: Task, result: Result, log: RewardLog) -> float:
    """1 when the run ended by itself (final state or end of turn), not at a budget."""
    return 1.0 if result.ok else 0.0


Handler = Callable[[Scorer, Task, Result, "RewardLog"], float]
TERMS: dict[str, Handler] = {"correct": _correct, "ran": _ran, "stopped": _stopped}
SHAPING = tuple(name for name in TERMS if name != "correct")


class RewardFailure(TypedDict):
    """A reward term that failed on a row: the term, the task's text and why."""

    term: str
    task: str
    reason: str


class RewardTally(TypedDict):
    """What the reward terms saw over a step (a part of its log line)."""

    outcomes: dict[str, int]
    reward_failures: list[RewardFailure]


@dataclass
class RewardLog:
    """What the reward terms saw since the last `take()`: outcomes and failures."""

    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[RewardFailure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, term: str, task: str, reason: str) -> None:
        with self.lock:
            self.failures.append(RewardFailure(term=term, task=task, reason=reason))

    def take(self) -> RewardTally:
        """The outcomes and failures recorded so far, and a fresh start."""
        with self.lock:
            taken = RewardTally(outcomes=dict(self.outcomes), reward_failures=list(self.failures))
            self.outcomes.clear()
            self.failures.clear()
        return taken


def reward_functions(
    terms: Sequence[RewardTerm], scorer: Scorer, tasks: Sequence[Task], log: RewardLog
) -> list[RewardFunction]:
    """One TRL reward function per term, over the rollouts' Results and the task column."""
    for term in terms:
        if term.name not in TERMS:
            raise LlmosError(
                f"unknown reward term {term.name!r}; known: {', '.join(sorted(TERMS))}"
            )
    return [_reward_function(term.name, TERMS[term.name], scorer, tasks, log) for term in terms]


def _reward_function(
    name: str, handler: Handler, scorer: Scorer, tasks: Sequence[Task], log: RewardLog
) -> RewardFunction:
    def reward(completions: Sequence[object], **columns: object) -> list[float | None]:
        results = _column(columns, RESULT_KEY, len(completions))
        indices = _column(columns, TASK_KEY, len(completions))
        return [
            safe_reward(name, handler, scorer, tasks, index, result, log)
            for index, result in zip(indices, results, strict=True)
        ]

    reward.__name__ = name
    return reward


def _column(columns: dict[str, object], key: str, rows: int) -> list[object]:
    """One value per row of the column `key` (None for each row when TRL passed none)."""
    values = columns.get(key)
    return list(values) if isinstance(values, list | tuple) and values else [None] * rows


def safe_reward(
    name: str,
    handler: Handler,
    scorer: Scorer,
    tasks: Sequence[Task],
    index: object,
    result: object,
    log: RewardLog,
) -> float:
    """`handler`'s reward for one row; 0 with a logged reason when anything fails."""
    label = f"#{index}"
    try:
        if not isinstance(result, Result) or not isinstance(index, SupportsIndex):
            missing = RESULT_KEY if not isinstance(result, Result) else TASK_KEY
            raise ValueError(f"the row has no {missing}")
        task = tasks[operator.index(index)]
        label = task.text
        return float(handler(scorer, task, result, log))
    except Exception as exc:  # a reward never crashes a step
        log.fail(name, label, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        if name == "correct":
            with log.lock:
                log.outcomes["scoring error"] += 1
        return 0.0
