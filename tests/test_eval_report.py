"""The evaluation's summary table, plot and JSON document come from one typed Summary."""

from __future__ import annotations

import json
from pathlib import Path

from llmos_grammar.errors import Location
from llmos_grammar.eval import Evaluation, Sample, Score, Task, TaskResult
from llmos_grammar.eval.outcomes import Outcome
from llmos_grammar.eval.plot import plot_comparison
from llmos_grammar.eval.report import Summary, document, summarize, summary
from llmos_grammar.runtime.vote import majority


def task_result(text: str, outcomes: list[Outcome], answers: list[str]) -> TaskResult:
    samples = tuple(
        Sample(Score(o == "solved", o, a), answer=a, actions=1, generated_tokens=10)
        for o, a in zip(outcomes, answers, strict=True)
    )
    return TaskResult(Task(text, "answer", Location("t.jsonl")), samples, majority(answers))


def evaluation() -> Evaluation:
    results = [
        task_result("a", ["solved", "solved", "wrong answer"], ["1", "1", "2"]),
        task_result("b", ["wrong answer", "solved", "wrong answer"], ["3", "4", "3"]),
        task_result("c", ["timeout", "timeout", "timeout"], ["", "", ""]),
    ]
    return Evaluation("llmos", planned=3, samples=3, results=results, wall_s=2.0)


def test_summary_figures() -> None:
    figures = summarize(evaluation())
    assert (figures.label, figures.total, figures.solved) == ("llmos", 3, 1)
    assert figures.accuracy == 1 / 3
    assert figures.outcomes == {"solved": 1, "wrong answer": 1, "timeout": 1}
    assert list(figures.outcomes) == ["solved", "wrong answer", "timeout"]  # OUTCOMES order
    assert figures.pass_at_k == {1: (2 / 3 + 1 / 3 + 0) / 3, 2: (1 + 2 / 3 + 0) / 3, 3: 2 / 3}
    assert figures.tokens_per_s == 90 / 2.0


def test_document_says_what_the_summary_says(tmp_path: Path) -> None:
    run = evaluation()
    figures = summarize(run)
    doc = json.loads(json.dumps(document("spec.yaml", "t.jsonl", run)))
    assert doc["accuracy"] == doc["majority"] == figures.accuracy
    assert doc["pass_at_k"] == {str(k): v for k, v in figures.pass_at_k.items()}
    assert doc["outcomes"] == figures.outcomes and doc["tokens_per_s"] == 45.0
    assert [r["task"] for r in doc["results"]] == ["a", "b", "c"]
    assert doc["results"][1]["samples"][1] == {
        "final": "4", "answer": "4", "solved": True, "outcome": "solved", "detail": "",
        "actions": 1, "stop_reason": "",
    }  # fmt: skip


def test_table_and_plot_read_summaries(tmp_path: Path) -> None:
    figures = summarize(evaluation())
    plain = Summary("plain", 3, 0, 0.0, {1: 0.0, 2: 0.0, 3: 0.0}, {"wrong answer": 3}, 1.0, 5.0)
    lines = summary([figures, plain], samples=3).splitlines()
    assert lines[0].split() == ["llmos", "plain"]
    width = len(lines[0]) - len(lines[0].lstrip())
    rows = {line[:width].rstrip(): line[width:].split() for line in lines[1:]}
    assert rows["solved"] == ["1/3", "0/3"] and rows["majority vote"] == ["33.3%", "0.0%"]
    assert rows["pass@3"] == ["66.7%", "0.0%"] and rows["  wrong answer"] == ["1", "3"]
    assert rows["  timeout"] == ["1", "0"] and rows["tokens/s"] == ["45.0", "5.0"]
    out = tmp_path / "eval.png"
    plot_comparison([figures, plain], out, "test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
