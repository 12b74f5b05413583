"""An evaluation's page: pass@k and outcome counts, the tasks' table (filtered by outcome),
each row opening the trace of the task's voted sample."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmos_grammar.eval.report import summarize
from llmos_grammar.eval.runner import Evaluation, TaskResult
from llmos_grammar.eval.tasks import Task
from llmos_grammar.trace import Trace
from llmos_grammar.viewer.diagram import diagram_svg
from llmos_grammar.viewer.graph_data import StateGraph
from llmos_grammar.viewer.page import document, eval_body
from llmos_grammar.viewer.run_view import run_view
from llmos_grammar.visible import visible

Side = tuple[Evaluation, Sequence[Trace | None]]  # an evaluation and its tasks' traces


def eval_html(spec: str, tasks: str, sides: Sequence[Side], graph: StateGraph | None = None) -> str:
    """The page of `sides` (llmos, then a baseline if any) of `spec` on the task set `tasks`."""
    traces: list[object] = []
    sections = [_section(evaluation, found, traces) for evaluation, found in sides]
    data = {"kind": "eval", "sections": sections, "traces": traces}
    name = Path(spec).parent.name or spec
    svg = diagram_svg(graph) if graph is not None else ""
    subtitle = f"{spec} on {tasks}"
    return document(f"llmos eval: {visible(name)}", visible(subtitle), eval_body(), data, svg)


def _section(
    evaluation: Evaluation, found: Sequence[Trace | None], traces: list[object]
) -> dict[str, object]:
    figures = summarize(evaluation)
    rows = []
    for result, trace in zip(evaluation.results, found, strict=True):
        index = None
        if trace is not None:
            index = len(traces)
            traces.append(run_view(trace).to_json())  # its header has its machine's graph
        rows.append({**_row(result), "trace": index})
    return {
        "label": evaluation.label,
        "total": figures.total,
        "solved": figures.solved,
        "accuracy": figures.accuracy,
        "pass_at_k": {str(k): v for k, v in figures.pass_at_k.items()},
        "outcomes": dict(figures.outcomes),
        "wall_s": round(figures.wall_s, 3),
        "samples": evaluation.samples,
        "rows": rows,
    }


def _row(result: TaskResult) -> dict[str, object]:
    voted = result.voted
    task = result.task
    text = f"{task.id}: {task.text}" if task.id else task.text
    return {
        "task": visible(text),
        "outcome": voted.score.outcome,
        "answer": visible(voted.answer or voted.score.final),
        "expected": visible(_expected(task)),
        "actions": voted.actions,
        "tokens": voted.generated_tokens,
        "detail": visible(voted.score.detail),
    }


def _expected(task: Task) -> str:
    if task.scorer == "tests":
        return f"passes the tests of {task.entry_point}" if task.entry_point else "passes its tests"
    return "" if task.answer is None else str(task.answer)
