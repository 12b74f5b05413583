"""Sampling for training on a tiny random model: a run that raises is a failed row."""

from __future__ import annotations

import re
import threading
from dataclasses import replace

import pytest

from llmos_grammar.errors import Location
from llmos_grammar.eval import Task
from llmos_grammar.eval.scorers import Score
from llmos_grammar.ir import Sampling
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime import Result, Runtime
from llmos_grammar.train.lean_pass import PassStats
from llmos_grammar.train.records import Draw, Record
from llmos_grammar.train.sampler import run_jobs, sample_tasks
from tests.test_runtime_batch import TASKS, Calculator, calc_machine, steer, varied_model

SAMPLING = Sampling(temperature=1.0, seed=3)


def program_number(result: Result) -> int:
    return int(re.sub(r"\D", "", result.actions[-1].input)) if result.actions else -1


class EvenScorer:
    """A stand-in scorer the test can predict: solved when the program prints an even number."""

    def score(self, task: Task, result: Result) -> Score:
        solved = program_number(result) % 2 == 0
        return Score(solved, "solved" if solved else "wrong answer", "")

    def close(self) -> None:
        pass


class Crashing(Calculator):
    """The calculator, except that the programs in `bad` raise (as a broken decoder would)."""

    def __init__(self, bad: set[str]) -> None:
        super().__init__()
        self.bad = bad
        self.raised = 0
        self._lock = threading.Lock()

    def run(self, action: str, text: str) -> ActionResult:
        if text in self.bad:
            with self._lock:
                self.raised += 1
            raise RuntimeError(f"decoder broke on {text.strip()!r}")
        return super().run(action, text)


def runtime(runner: Calculator) -> Runtime:
    return Runtime(calc_machine(), varied_model(), runner=runner, logits_processors=[steer])


def tasks() -> list[Task]:
    return [Task(t, "answer", Location("<t>", 1), answer=0) for t in TASKS[:4]]


def test_a_run_that_raises_is_a_failed_row_with_its_reason() -> None:
    clean = sample_tasks(runtime(Calculator()), EvenScorer(), tasks(), 3, batch=6,
                         sampling=SAMPLING)  # fmt: skip  # type: ignore[arg-type]
    programs = {(r.task_index, r.sample): r.result.actions[-1].input for r in clean
                if r.result and r.result.actions}  # fmt: skip
    assert len(programs) == 12
    bad = {programs[(1, 0)], programs[(2, 2)]}
    crashing = {key for key, program in programs.items() if program in bad}
    runner = Crashing(bad)
    runs = sample_tasks(runtime(runner), EvenScorer(), tasks(), 3, batch=6,
                        sampling=SAMPLING)  # fmt: skip  # type: ignore[arg-type]
    assert [(r.task_index, r.sample) for r in runs] == [(r.task_index, r.sample) for r in clean]
    for run, before in zip(runs, clean, strict=True):
        key = (run.task_index, run.sample)
        if key in crashing:
            assert run.result is None and not run.solved and run.outcome == "model error"
            assert re.fullmatch(r"RuntimeError: decoder broke on 'print\(\d+\)'", run.reason)
        else:  # every other row finished as it did without the crashes, token for token
            assert run.result is not None and before.result is not None
            assert run.result.completion_ids == before.result.completion_ids
            assert run.outcome == before.outcome
    assert runner.raised >= len(crashing)
    record = Record("rft", 1, Draw(tuple(runs), 1.0), 0, PassStats(0, 0, 0, 0, 0, 0, 0), 0)
    failures = record.to_json()["failures"]
    assert isinstance(failures, list) and len(failures) == len(crashing)
    assert {(f["task"], f["sample"]) for f in failures} == crashing
    assert all(f["reason"].startswith("RuntimeError: decoder broke") for f in failures)
    assert f"{len(crashing)} failed run(s)" in record.line()


def test_a_row_that_always_raises_fails_alone() -> None:
    from llmos_grammar.runtime.batch import Job

    class Always(Calculator):
        def run(self, action: str, text: str) -> ActionResult:
            raise ValueError("no")

    jobs = [Job(t, 0, task) for t, task in enumerate(TASKS[:3])]
    done, failed = run_jobs(runtime(Always()), jobs, 3, SAMPLING)
    assert done == {} and failed == {(0, 0): "ValueError: no", (1, 0): "ValueError: no",
                                     (2, 0): "ValueError: no"}  # fmt: skip


@pytest.mark.parametrize("batch", [1, 4])
def test_rows_keep_their_seeds_whatever_the_batch(batch: int) -> None:
    runs = sample_tasks(runtime(Calculator()), EvenScorer(), tasks()[:2], 2, batch=batch,
                        sampling=SAMPLING)  # fmt: skip  # type: ignore[arg-type]
    again = sample_tasks(runtime(Calculator()), EvenScorer(), tasks()[:2], 2, batch=3,
                         sampling=replace(SAMPLING))  # fmt: skip  # type: ignore[arg-type]
    assert [r.result.completion_ids for r in runs if r.result] == [
        r.result.completion_ids for r in again if r.result
    ]
