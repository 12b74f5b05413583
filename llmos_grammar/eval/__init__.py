"""Evaluating a spec on a task set: task files, scorers, pass@k, reports, plots.

    from llmos_grammar.eval import load_tasks, Scorer, evaluate
    tasks = load_tasks("examples/calculator/tasks.jsonl")
    evaluation = evaluate(runtime, Scorer(machine), tasks, label="llmos", samples=4)

`llmos-eval` (llmos_grammar.cli.eval) is the command line over these.
"""

from __future__ import annotations

from llmos_grammar.eval.baseline import plain_machine
from llmos_grammar.eval.outcomes import OUTCOMES, Outcome
from llmos_grammar.eval.runner import Evaluation, Sample, TaskResult, evaluate
from llmos_grammar.eval.scorers import Score, Scorer, answer_matches
from llmos_grammar.eval.tasks import Task, TaskSet, load_tasks

__all__ = [
    "OUTCOMES",
    "Evaluation",
    "Outcome",
    "Sample",
    "Score",
    "Scorer",
    "Task",
    "TaskResult",
    "TaskSet",
    "answer_matches",
    "evaluate",
    "load_tasks",
    "plain_machine",
]
