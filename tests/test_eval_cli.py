"""llmos-eval and llmos-run --samples end to end, on a scripted batched runtime."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from llmos_grammar.cli.main import main
from llmos_grammar.eval import Scorer, evaluate, load_tasks
from llmos_grammar.spec import load
from tests.fake_batch import FakeBatchRuntime, calc_result, text_result

ROOT = Path(__file__).resolve().parent.parent
CALC = str(ROOT / "examples" / "calculator" / "spec.yaml")
CALC_TASKS = str(ROOT / "examples" / "calculator" / "tasks.jsonl")
ANSWERS = {t.text: t.answer for t in load_tasks(CALC_TASKS).tasks}
DOC_KEYS = {
    "spec", "tasks", "total", "solved", "accuracy", "majority", "pass_at_k", "outcomes",
    "wall_s", "tokens_per_s", "results",
}  # fmt: skip


def llmos_script(task: str, sample: int) -> Any:
    """Right on even samples, off by one on odd ones; the "minus" task's run raises."""
    if "minus" in task:
        raise RuntimeError("decode failed")
    answer = ANSWERS[task]
    said = answer if sample % 2 == 0 else answer + 1  # type: ignore[operator]
    return calc_result(f"print({answer})\n", f" {said}.\n", stdout=f"{answer}\n")


def plain_script(task: str, sample: int) -> Any:
    return text_result("I think it is 42.")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> list[FakeBatchRuntime]:
    made: list[FakeBatchRuntime] = []

    def open_runtimes(
        machines: Sequence[Any],
        adapter: str | None = None,
        engine_args: Any = None,
        details: bool = False,
    ) -> list[FakeBatchRuntime]:
        scripts = [llmos_script, plain_script]
        made.extend(FakeBatchRuntime(scripts[i]) for i in range(len(machines)))
        return made

    monkeypatch.setattr("llmos_grammar.cli.eval.open_runtimes", open_runtimes)
    return made


def test_eval_json_document(
    tmp_path: Path, fakes: list[FakeBatchRuntime], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    argv = ["eval", CALC, "--tasks", CALC_TASKS, "--limit", "4", "--json", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == DOC_KEYS
    assert (doc["total"], doc["solved"], doc["accuracy"]) == (4, 3, 0.75)
    assert doc["outcomes"] == {"solved": 3, "model error": 1}
    assert doc["pass_at_k"] == {"1": 0.75}
    first, second = doc["results"][:2]
    assert set(first) == {"task", "solved", "final", "outcome", "actions", "samples"}
    assert first["outcome"] == "model error" and "decode failed" in first["samples"][0]["detail"]
    assert second == {**second, "solved": True, "final": " 1296.\n", "actions": 1}
    table = capsys.readouterr().out
    assert "calculator on" in table and "4 task(s), 1 sample(s) each, temperature 0" in table
    assert "solved" in table and "3/4" in table and "75.0%" in table
    assert all(f.closed for f in fakes)


def test_eval_samples_vote_and_pass_at_k(
    tmp_path: Path, fakes: list[FakeBatchRuntime], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    argv = ["eval", CALC, "--tasks", CALC_TASKS, "--limit", "3", "--samples", "3"]
    assert main([*argv, "--batch", "3", "--seed", "7", "--json", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    # tasks 2 and 3: samples 0 and 2 right, 1 wrong -> majority right; task 1 raised
    assert doc["solved"] == 2 and doc["majority"] == pytest.approx(2 / 3)
    assert doc["accuracy"] == doc["majority"]
    assert doc["pass_at_k"] == pytest.approx({"1": 4 / 9, "2": 2 / 3, "3": 2 / 3})
    assert [len(r["samples"]) for r in doc["results"]] == [3, 3, 3]
    _, samples, batch, sampling = fakes[0].calls[0]
    assert sampling is not None
    assert (samples, batch, sampling.temperature, sampling.seed) == (3, 3, 0.7, 7)
    table = capsys.readouterr().out
    assert "majority vote" in table and "pass@2" in table and "pass@3" in table


def test_eval_baseline_side_by_side_and_plot(
    tmp_path: Path, fakes: list[FakeBatchRuntime], capsys: pytest.CaptureFixture[str]
) -> None:
    png, out = tmp_path / "eval.png", tmp_path / "eval.json"
    argv = ["eval", CALC, "--tasks", CALC_TASKS, "--limit", "3", "--baseline", "plain"]
    assert main([*argv, "--plot", str(png), "--json", str(out), "--no-progress"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    doc = json.loads(out.read_text())
    assert doc["baseline"]["outcomes"] == {"wrong answer": 3}
    header = capsys.readouterr().out.splitlines()[1]
    assert header.split() == ["llmos", "plain"]


def test_eval_ctrl_c_prints_partial_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeBatchRuntime(llmos_script, interrupt_after=3)
    monkeypatch.setattr(
        "llmos_grammar.cli.eval.open_runtimes",
        lambda machines, adapter=None, engine_args=None, details=False: [fake, fake],
    )
    out = tmp_path / "partial.json"
    argv = ["eval", CALC, "--tasks", CALC_TASKS, "--limit", "6", "--baseline", "plain"]
    assert main([*argv, "--json", str(out), "--no-progress"]) == 130
    captured = capsys.readouterr()
    assert "interrupted: 3 of 6 task(s) finished (llmos)" in captured.err
    assert "3/3" in captured.out  # the partial table: the three tasks that finished
    assert json.loads(out.read_text())["total"] == 3
    assert len(fake.calls) == 1  # the baseline (same fake) never started


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--samples", "0"], "--samples must be at least 1 (got 0)"),
        (["--batch", "0"], "--batch must be at least 1"),
        (["--limit", "-1"], "--limit must be at least 1"),
        (["--temperature", "-1"], "--temperature must not be negative"),
        (["--plot", "out.jpg"], "--plot writes a PNG"),
        (["--json", "/nonexistent/x.json"], "--json: no such folder"),
    ],
)
def test_eval_bad_arguments(
    extra: list[str], message: str, fakes: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", CALC, "--tasks", CALC_TASKS, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not fakes


def test_eval_missing_files(fakes: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", CALC, "--tasks", "nope.jsonl"]) == 2
    assert "--tasks: no such file: nope.jsonl" in capsys.readouterr().err
    assert main(["eval", "nope.yaml", "--tasks", CALC_TASKS]) == 2
    assert "no such spec file: nope.yaml" in capsys.readouterr().err


def test_eval_bad_task_file_lists_problems(
    tmp_path: Path, fakes: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "a", "answer": 1}\n{"task": "b"}\n{"task": 3, "answer": 2}\n')
    assert main(["eval", CALC, "--tasks", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"llmos: {bad}:2:1: error: unknown scorer: add 'answer', or 'tests' and 'entry_point'",
        '  {"task": "b"}',
        "  ^",
        f"llmos: {bad}:3:1: error: 'task' must be a string, got a number",
        '  {"task": 3, "answer": 2}',
        "  ^",
    ]
    assert not fakes


def test_a_scorer_failure_is_counted_not_raised() -> None:
    machine = load(CALC)

    class Broken(Scorer):
        def score(self, task: Any, result: Any) -> Any:
            raise ValueError("bad scorer")

    tasks = load_tasks(CALC_TASKS, limit=2)
    fake = FakeBatchRuntime(lambda task, s: calc_result("print(1)\n", " 1.\n"))
    evaluation = evaluate(fake, Broken(machine), tasks, label="llmos", progress=False)
    outcomes = [r.voted.score.outcome for r in evaluation.results]
    assert outcomes == ["scoring error", "scoring error"]
    assert evaluation.results[0].voted.score.detail == "ValueError: bad scorer"


# ---- llmos-run --samples --------------------------------------------------------------------
class FakeRuntime(FakeBatchRuntime):
    """Stands in for Runtime(machine, model, approve=...) as llmos-run builds it."""

    script: Any = None

    def __init__(
        self, machine: Any, model: Any = None, approve: Any = None, engine_args: Any = None
    ) -> None:
        super().__init__(type(self).script)

    def __enter__(self) -> FakeRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sampled(answers: list[str], refused_row: int | None = None) -> Any:
    from llmos_grammar.actions import ActionResult

    def script(task: str, sample: int) -> Any:
        if sample == refused_row:
            action = ActionResult(exit_code=None, refused="not approved")
            return calc_result("print(1)\n", answers[sample], action=action, stop="refused")
        return calc_result("print(1)\n", answers[sample], stdout="1\n")

    return script


def test_run_samples_prints_answers_and_votes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeRuntime.script = sampled([" 5049.\n", " 5,050.\n", " 5050.\n", " 5049.0\n"])
    monkeypatch.setattr("llmos_grammar.runtime.Runtime", FakeRuntime)
    assert main(["run", CALC, "What is the sum of 1..100?", "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "sample 1: 5,050.  [final, 1 action(s), 10 tokens]" in out
    lines = out.splitlines()
    table = lines[lines.index("answer  votes  rows") :]
    assert table[1].split() == ["5049.", "2", "0,", "3"]  # tie: the earliest row wins
    assert table[2].split() == ["5,050.", "2", "1,", "2"]
    assert table[3] == "voted answer: 5049. (2 of 4 votes, row 0)"


def test_run_samples_exit_follows_the_winning_row(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeRuntime.script = sampled([" 7.\n", " 8.\n", " 7.\n"], refused_row=0)
    monkeypatch.setattr("llmos_grammar.runtime.Runtime", FakeRuntime)
    assert main(["run", CALC, "task", "--samples", "3", "--json"]) == 3
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"row", "sample", "kind"} <= set(lines[0])
    vote = lines[-1]
    assert vote["kind"] == "vote" and vote["answer"] == "7." and vote["row"] == 0
    assert vote["table"][0] == {"answer": "7.", "key": "7", "votes": 2, "rows": [0, 2]}


def test_run_samples_from_the_spec_and_bad_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    text = Path(CALC).read_text().replace("policy: ../../", f"policy: {ROOT}/")
    (tmp_path / "calc.lark").write_text(
        (ROOT / "examples" / "calculator" / "calc.lark").read_text()
    )
    spec.write_text(text + "samples: {n: 2, temperature: 0.5}\n")
    FakeRuntime.script = sampled([" 1.\n", " 1.\n"])
    monkeypatch.setattr("llmos_grammar.runtime.Runtime", FakeRuntime)
    assert main(["run", str(spec), "task"]) == 0
    assert "voted answer: 1. (2 of 2 votes, row 0)" in capsys.readouterr().out
    assert main(["run", CALC, "task", "--samples", "0"]) == 2
    assert main(["run", CALC, "task", "--samples", "2", "--trace", "t.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "--samples must be at least 1" in err and "--trace records one run" in err


# ---- with the real model, once the batched runtime exists ----------------------------------
def has_stream_batch() -> bool:
    from llmos_grammar.runtime import Runtime

    return hasattr(Runtime, "stream_batch")


@pytest.mark.model
@pytest.mark.skipif(not has_stream_batch(), reason="the runtime has no stream_batch yet")
def test_eval_calculator_with_the_real_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    argv = ["eval", CALC, "--tasks", CALC_TASKS, "--limit", "4", "--json", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == DOC_KEYS and doc["total"] == 4
    assert sum(doc["outcomes"].values()) == 4 and "model error" not in doc["outcomes"]
    assert doc["solved"] >= 1 and doc["tokens_per_s"] > 0
    assert all(r["actions"] >= 1 for r in doc["results"])
