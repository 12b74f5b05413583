"""The evaluation's JSON document and its summary table (llmos and the plain baseline)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from llmos_grammar.eval.metrics import accuracy, ks_for, mean_pass_at_k
from llmos_grammar.eval.outcomes import OUTCOMES
from llmos_grammar.eval.runner import Evaluation, TaskResult


def document(spec: str, tasks: str, evaluation: Evaluation) -> dict[str, Any]:
    """The --json document.

    With one sample `accuracy` is the greedy accuracy; with several it is the
    majority-vote accuracy (the voted sample's score), the same as `majority`.
    `outcomes` counts each task once, by its voted sample.
    """
    results = evaluation.results
    solved = sum(r.solved for r in results)
    majority = accuracy([r.solved for r in results])
    tokens = sum(s.generated_tokens for r in results for s in r.samples)
    return {
        "spec": spec,
        "tasks": tasks,
        "total": len(results),
        "solved": solved,
        "accuracy": majority,
        "majority": majority,
        "pass_at_k": pass_at_k_table(results, evaluation.samples),
        "outcomes": outcome_counts(results),
        "wall_s": round(evaluation.wall_s, 3),
        "tokens_per_s": round(tokens / evaluation.wall_s, 2) if evaluation.wall_s > 0 else 0.0,
        "results": [_task_json(r) for r in results],
    }


def pass_at_k_table(results: list[TaskResult], samples: int) -> dict[str, float]:
    counts = [(len(r.samples), sum(s.score.solved for s in r.samples)) for r in results]
    return {str(k): mean_pass_at_k(counts, k) for k in ks_for(samples)}


def outcome_counts(results: list[TaskResult]) -> dict[str, int]:
    counts = Counter(r.voted.score.outcome for r in results)
    return {name: counts[name] for name in OUTCOMES if counts[name]}


def _task_json(result: TaskResult) -> dict[str, Any]:
    voted = result.voted
    return {
        "task": result.task.id or result.task.text,
        "solved": result.solved,
        "final": voted.score.final,
        "outcome": voted.score.outcome,
        "actions": voted.actions,
        "samples": [
            {
                "final": s.score.final,
                "answer": s.answer,
                "solved": s.score.solved,
                "outcome": s.score.outcome,
                "detail": s.score.detail,
                "actions": s.actions,
                "stop_reason": s.stop_reason,
            }
            for s in result.samples
        ],
    }


def summary(docs: list[tuple[str, dict[str, Any]]], samples: int) -> str:
    """A table with one column per evaluated machine (llmos, then the baseline)."""
    rows: list[tuple[str, list[str]]] = [
        ("solved", [f"{d['solved']}/{d['total']}" for _, d in docs]),
        ("accuracy", [_pct(d["accuracy"]) for _, d in docs]),
    ]
    if samples > 1:
        rows.append(("majority vote", [_pct(d["majority"]) for _, d in docs]))
        for k in ks_for(samples):
            rows.append((f"pass@{k}", [_pct(d["pass_at_k"][str(k)]) for _, d in docs]))
    rows.append(("outcomes", ["" for _ in docs]))
    seen = [o for o in OUTCOMES if any(o in d["outcomes"] for _, d in docs)]
    for outcome in seen:
        rows.append((f"  {outcome}", [str(d["outcomes"].get(outcome, 0)) for _, d in docs]))
    rows.append(("tokens/s", [f"{d['tokens_per_s']:.1f}" for _, d in docs]))
    rows.append(("wall time", [f"{d['wall_s']:.1f} s" for _, d in docs]))
    width = max(len(label) for label, _ in rows) + 2
    columns = [
        max(len(name), *(len(r[1][i]) for r in rows)) + 2 for i, (name, _) in enumerate(docs)
    ]
    lines = [
        " " * width + "".join(name.rjust(w) for (name, _), w in zip(docs, columns, strict=True))
    ]
    for label, cells in rows:
        lines.append(
            label.ljust(width) + "".join(c.rjust(w) for c, w in zip(cells, columns, strict=True))
        )
    return "\n".join(lines)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"
