"""Drive a runtime's `stream_batch` over a task set, scoring and voting as tasks finish.

A run that raises (a model or decode error) counts as "model error" for its
samples and the evaluation goes on with the tasks not yet started; Ctrl-C
stops it and keeps what finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from llmos_grammar.eval.scorers import Score, Scorer
from llmos_grammar.eval.tasks import Task, TaskSet
from llmos_grammar.ir import Sampling
from llmos_grammar.libtypes.progress import progress_bar
from llmos_grammar.runtime.events import DoneEvent
from llmos_grammar.runtime.vote import VoteTable, majority

if TYPE_CHECKING:
    from llmos_grammar.runtime.events import Result, RowEvent


class BatchRuntime(Protocol):
    """What the evaluation needs of a runtime: the batched stream of row events."""

    def stream_batch(
        self,
        tasks: Sequence[str],
        samples: int = 1,
        batch: int = 8,
        sampling: Sampling | None = None,
    ) -> Iterator[RowEvent]: ...


@dataclass(frozen=True)
class Sample:
    """One scored sample of a task."""

    score: Score
    answer: str = ""  # what the sample votes with (see llmos_grammar.runtime.vote)
    actions: int = 0
    generated_tokens: int = 0
    stop_reason: str = ""


@dataclass(frozen=True)
class TaskResult:
    """A task's samples, their vote, and the sample that stands for the task."""

    task: Task
    samples: tuple[Sample, ...]
    vote: VoteTable

    @property
    def voted(self) -> Sample:
        return self.samples[self.vote.winning_row]

    @property
    def solved(self) -> bool:
        return self.voted.score.solved


@dataclass
class Evaluation:
    """Finished tasks in task order, the wall time, and whether Ctrl-C cut it short."""

    label: str
    planned: int
    samples: int
    results: list[TaskResult] = field(default_factory=list)
    wall_s: float = 0.0
    interrupted: bool = False


def evaluate(
    runtime: BatchRuntime,
    scorer: Scorer,
    taskset: TaskSet,
    *,
    label: str,
    samples: int = 1,
    batch: int = 8,
    sampling: Sampling | None = None,
    progress: bool = True,
) -> Evaluation:
    """Run every task `samples` times (rows of batches of `batch`), score and vote."""
    run = _Run(runtime, scorer, taskset.tasks, samples, batch, sampling)
    evaluation = Evaluation(label, len(taskset.tasks), samples)
    started = time.perf_counter()
    bar = progress_bar(len(taskset.tasks) * samples, label, "run", progress)
    run.on_sample = lambda: bar.update(1)
    run.on_task = lambda: bar.set_postfix_str(f"solved {run.solved}/{len(run.done)}")
    try:
        run.all()
    except KeyboardInterrupt:
        evaluation.interrupted = True
    finally:
        bar.close()
    evaluation.wall_s = time.perf_counter() - started
    evaluation.results = [run.done[i] for i in sorted(run.done)]
    return evaluation


class _Run:
    def __init__(
        self,
        runtime: BatchRuntime,
        scorer: Scorer,
        tasks: Sequence[Task],
        samples: int,
        batch: int,
        sampling: Sampling | None,
    ) -> None:
        self.runtime, self.scorer, self.tasks = runtime, scorer, tasks
        self.samples, self.batch, self.sampling = samples, batch, sampling
        self.rows: dict[int, dict[int, Sample]] = {}  # task -> sample -> scored sample
        self.done: dict[int, TaskResult] = {}
        self.solved = 0
        self.on_sample: Callable[[], object] = lambda: None
        self.on_task: Callable[[], object] = lambda: None

    def all(self) -> None:
        pending = list(range(len(self.tasks)))
        while pending:
            started: set[int] = set()
            error: Exception | None = None
            try:
                self._stream(pending, started)
            except Exception as exc:  # a failed run must not end the evaluation
                error = exc
            unfinished = [i for i in pending if i not in self.done]
            broken = [i for i in unfinished if i in started] or unfinished[:1]
            reason = _describe(error) if error else "the run ended without a result"
            for index in broken:
                self._fail(index, reason)
            pending = [i for i in unfinished if i not in self.done]

    def _stream(self, pending: list[int], started: set[int]) -> None:
        texts = [self.tasks[i].text for i in pending]
        for row_event in self.runtime.stream_batch(
            texts, samples=self.samples, batch=self.batch, sampling=self.sampling
        ):
            index = pending[row_event.task_index]
            started.add(index)
            event = row_event.event
            if isinstance(event, DoneEvent):
                self._finish_sample(index, row_event.sample, event.result)

    def _finish_sample(self, index: int, sample: int, result: Result) -> None:
        task = self.tasks[index]
        answer = self.scorer.final(result)
        try:
            score = self.scorer.score(task, result)
        except Exception as exc:  # the scorer's own failure is this sample's outcome
            score = Score(False, "scoring error", answer, _describe(exc))
        stats = result.stats
        scored = Sample(
            score, answer, len(result.actions), stats.generated_tokens, result.stop_reason
        )
        self._add(index, sample, scored)

    def _fail(self, index: int, reason: str) -> None:
        for sample in range(self.samples):
            if sample not in self.rows.get(index, {}):
                self._add(index, sample, Sample(Score(False, "model error", "", reason)))

    def _add(self, index: int, sample: int, scored: Sample) -> None:
        rows = self.rows.setdefault(index, {})
        rows[sample] = scored
        self.on_sample()
        if len(rows) < self.samples:
            return
        ordered = tuple(rows[s] for s in range(self.samples))
        vote = majority([s.answer for s in ordered])
        self.done[index] = TaskResult(self.tasks[index], ordered, vote)
        self.solved += self.done[index].solved
        self.on_task()


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
