"""An evaluation's figures (`Summary`), its JSON document and its summary table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from llmos_grammar.eval.metrics import accuracy, ks_for, mean_pass_at_k
from llmos_grammar.eval.outcomes import OUTCOMES, Outcome
from llmos_grammar.eval.runner import Evaluation, TaskResult


@dataclass(frozen=True)
class Summary:
    """What the table, the plot and the JSON document show of one evaluation.

    With one sample `accuracy` is the greedy accuracy; with several it is the
    majority-vote accuracy (the voted sample's score). `outcomes` counts each
    task once, by its voted sample, in the order of OUTCOMES (absent: none).
    """

    label: str
    total: int
    solved: int
    accuracy: float
    pass_at_k: dict[int, float]
    outcomes: dict[Outcome, int]
    wall_s: float
    tokens_per_s: float


def summarize(evaluation: Evaluation) -> Summary:
    """The figures of `evaluation`."""
    results = evaluation.results
    tokens = sum(s.generated_tokens for r in results for s in r.samples)
    wall = evaluation.wall_s
    return Summary(
        label=evaluation.label,
        total=len(results),
        solved=sum(r.solved for r in results),
        accuracy=accuracy([r.solved for r in results]),
        pass_at_k=pass_at_k_table(results, evaluation.samples),
        outcomes=outcome_counts(results),
        wall_s=wall,
        tokens_per_s=tokens / wall if wall > 0 else 0.0,
    )


def document(spec: str, tasks: str, evaluation: Evaluation) -> dict[str, object]:
    """The --json document: the summary's figures, then every task's samples."""
    figures = summarize(evaluation)
    return {
        "spec": spec,
        "tasks": tasks,
        "total": figures.total,
        "solved": figures.solved,
        "accuracy": figures.accuracy,
        "majority": figures.accuracy,
        "pass_at_k": {str(k): value for k, value in figures.pass_at_k.items()},
        "outcomes": dict(figures.outcomes),
        "wall_s": round(figures.wall_s, 3),
        "tokens_per_s": round(figures.tokens_per_s, 2),
        "results": [_task_json(r) for r in evaluation.results],
    }


def pass_at_k_table(results: Sequence[TaskResult], samples: int) -> dict[int, float]:
    counts = [(len(r.samples), sum(s.score.solved for s in r.samples)) for r in results]
    return {k: mean_pass_at_k(counts, k) for k in ks_for(samples)}


def outcome_counts(results: Sequence[TaskResult]) -> dict[Outcome, int]:
    counts = Counter(r.voted.score.outcome for r in results)
    return {name: counts[name] for name in OUTCOMES if counts[name]}


def _task_json(result: TaskResult) -> dict[str, object]:
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


def summary(summaries: Sequence[Summary], samples: int) -> str:
    """A table with one column per evaluated machine (llmos, then the baseline)."""
    rows: list[tuple[str, list[str]]] = [
        ("solved", [f"{s.solved}/{s.total}" for s in summaries]),
        ("accuracy", [_pct(s.accuracy) for s in summaries]),
    ]
    if samples > 1:
        rows.append(("majority vote", [_pct(s.accuracy) for s in summaries]))
        for k in ks_for(samples):
            rows.append((f"pass@{k}", [_pct(s.pass_at_k[k]) for s in summaries]))
    rows.append(("outcomes", ["" for _ in summaries]))
    seen = [o for o in OUTCOMES if any(o in s.outcomes for s in summaries)]
    for outcome in seen:
        rows.append((f"  {outcome}", [str(s.outcomes.get(outcome, 0)) for s in summaries]))
    rows.append(("tokens/s", [f"{s.tokens_per_s:.1f}" for s in summaries]))
    rows.append(("wall time", [f"{s.wall_s:.1f} s" for s in summaries]))
    width = max(len(label) for label, _ in rows) + 2
    columns = [
        max(len(s.label), *(len(r[1][i]) for r in rows)) + 2 for i, s in enumerate(summaries)
    ]
    lines = [
        " " * width + "".join(s.label.rjust(w) for s, w in zip(summaries, columns, strict=True))
    ]
    for label, cells in rows:
        lines.append(
            label.ljust(width) + "".join(c.rjust(w) for c, w in zip(cells, columns, strict=True))
        )
    return "\n".join(lines)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"
