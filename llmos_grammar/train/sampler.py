"""Sampling for training: K runs of each task as rows of one batch, each run scored.

A run that raises (a decode or model error) does not end the batch's work: the
rows that finished are kept, the rows that were running are run again in two
halves (each row keeps its (task, sample) key, so its seed and tokens), and a
row that raises alone is a failed row with the error as its reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmos_grammar.eval.tasks import Task
from llmos_grammar.ir import Sampling
from llmos_grammar.runtime.batch import Batch, Job
from llmos_grammar.runtime.events import DoneEvent, Result

if TYPE_CHECKING:
    from llmos_grammar.eval.scorers import Scorer
    from llmos_grammar.runtime import Runtime

Key = tuple[int, int]  # (task index, sample)


@dataclass(frozen=True)
class Sampled:
    """One scored run: its task and sample, its Result (None when it raised), the outcome."""

    task_index: int
    sample: int
    result: Result | None
    solved: bool
    outcome: str  # the scorer's outcome; "model error" for a run that raised
    reason: str = ""  # why it failed, in one line (empty when solved)

    def to_json(self) -> dict[str, object]:
        return {"task": self.task_index, "sample": self.sample, "outcome": self.outcome,
                "reason": self.reason}  # fmt: skip


@dataclass
class _Runs:
    """Finished results and failures by key, filled as groups of jobs run."""

    done: dict[Key, Result]
    failed: dict[Key, str]


def run_jobs(
    runtime: Runtime,
    jobs: Sequence[Job],
    batch: int,
    sampling: Sampling,
    on_done: Callable[[], object] = lambda: None,
) -> tuple[dict[Key, Result], dict[Key, str]]:
    """Run `jobs` `batch` rows at a time: results by key, and the reason of each failed key."""
    runs = _Runs({}, {})
    groups: deque[list[Job]] = deque([list(jobs)])
    while groups:
        group = groups.popleft()
        started: set[Key] = set()
        try:
            for item in Batch(runtime, group, batch, sampling).events():
                key = (item.task_index, item.sample)
                started.add(key)
                if isinstance(item.event, DoneEvent):
                    runs.done[key] = item.event.result
                    on_done()
        except Exception as exc:  # a run that raises must not end the others
            groups.extend(_after_error(group, started, runs, describe(exc), batch, on_done))
    return runs.done, runs.failed


def _after_error(
    group: list[Job],
    started: set[Key],
    runs: _Runs,
    reason: str,
    batch: int,
    on_done: Callable[[], object],
) -> list[list[Job]]:
    """The groups to run again after `group` raised; a row that raised alone is failed."""
    rest = [j for j in group if _key(j) not in runs.done]
    hit = [j for j in rest if _key(j) in started] or rest[:batch]  # the rows in flight
    later = [j for j in rest if j not in hit]
    if len(hit) == 1:
        runs.failed[_key(hit[0])] = reason
        on_done()
        return [later] if later else []
    half = len(hit) // 2
    return [g for g in (hit[:half], hit[half:], later) if g]


def _key(job: Job) -> Key:
    return (job.task_index, job.sample)


def sample_tasks(
    runtime: Runtime,
    scorer: Scorer,
    tasks: Sequence[Task],
    samples: int,
    *,
    batch: int,
    sampling: Sampling,
    on_done: Callable[[], object] = lambda: None,
) -> list[Sampled]:
    """Every task `samples` times (rows of batches of `batch`), scored, in (task, sample) order."""
    jobs = [Job(t, s, task.text) for t, task in enumerate(tasks) for s in range(samples)]
    done, failed = run_jobs(runtime, jobs, batch, sampling, on_done)
    out = []
    for job in jobs:
        key = _key(job)
        result = done.get(key)
        if result is None:
            reason = failed.get(key, "the run ended without a result")
            out.append(Sampled(*key, None, False, "model error", reason))
        else:
            out.append(_scored(scorer, tasks[job.task_index], key, result))
    return out


def _scored(scorer: Scorer, task: Task, key: Key, result: Result) -> Sampled:
    try:
        score = scorer.score(task, result)
    except Exception as exc:  # the scorer's own failure is this row's outcome
        return Sampled(*key, result, False, "scoring error", describe(exc))
    return Sampled(*key, result, score.solved, score.outcome, "" if score.solved else score.detail)


def describe(exc: BaseException) -> str:
    """`Type: message` on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
