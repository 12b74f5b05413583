"""Rewards on hand-made calculator completions, run for real in the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos_grammar.actions import ActionRunner
from llmos_grammar.errors import LlmosError, Location
from llmos_grammar.eval import Scorer, Task
from llmos_grammar.spec import load
from llmos_grammar.train.rewards import (
    TERMS,
    RewardLog,
    RewardTerm,
    reward_functions,
    safe_reward,
)
from llmos_grammar.train.rollout import RESULT_KEY
from tests.fake_batch import calc_result
from tests.specs import SPEC, write

QUICK_POLICY = """\
llmos-policy: 1
actions:
  python:
    handler: python
    timeout_s: 2
    cpu_s: 1
    memory_mb: 256
"""
TASK = Task("What is 48 times 27?", "answer", Location("train.jsonl", 1), answer=1296)
# (program, what the model says after the output, correct, ran, outcome); a failed program
# prints nothing, so the model has no number to repeat
CASES = {
    "correct": ("print(48 * 27)\n", " 1296.\n", 1.0, 1.0, {"solved"}),
    "wrong": ("print(48 + 27)\n", " 75.\n", 0.0, 1.0, {"wrong answer"}),
    "syntax error": ("print(48 *\n", " unknown.\n", 0.0, 0.0, {"exception"}),
    "infinite loop": ("while True:\n    pass\n", " unknown.\n", 0.0, 0.0, {"timeout", "limit hit"}),
    "memory bomb": (
        "s = 'x' * 1024\nwhile True:\n    s += s\n",
        " unknown.\n",
        0.0,
        0.0,
        {"exception", "limit hit"},
    ),
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scorer, ActionRunner]]:
    machine = load(write(tmp_path_factory.mktemp("quick"), SPEC, QUICK_POLICY))
    runner = ActionRunner(machine.policy)
    yield Scorer(machine), runner
    runner.close()


def rewards(scorer: Scorer, program: str, answer: str, runner: ActionRunner) -> tuple:
    """Run `program` in the sandbox, make the run that wrote it, reward it with both terms."""
    result = calc_result(program, answer, action=runner.run("python", program))
    log = RewardLog()
    terms = [RewardTerm("correct", 1.0), RewardTerm("ran", 0.1)]
    correct, ran = reward_functions(terms, scorer, [TASK], log)
    row = {RESULT_KEY: [result], "task_index": [0]}
    values = (correct(["c"], **row)[0], ran(["c"], **row)[0])
    return values, log.take(), result


@pytest.mark.parametrize("case", list(CASES))
def test_reward_outcomes_on_hand_made_completions(
    case: str, quick: tuple[Scorer, ActionRunner]
) -> None:
    scorer, runner = quick
    program, answer, correct, ran, outcomes = CASES[case]
    (got_correct, got_ran), taken, result = rewards(scorer, program, answer, runner)
    assert (got_correct, got_ran) == (correct, ran), result.actions[0].result
    assert set(taken["outcomes"]) <= outcomes and sum(taken["outcomes"].values()) == 1
    assert taken["reward_failures"] == []
    if case == "syntax error":
        assert "SyntaxError" in result.actions[0].result.stderr
    if case == "memory bomb":
        action = result.actions[0].result
        assert "MemoryError" in action.stderr or action.limit_hit is not None or action.signal


def test_a_failing_handler_gives_zero_with_a_logged_reason() -> None:
    def broken(*_: object) -> float:
        raise RuntimeError("the scorer's sandbox is gone")

    log = RewardLog()
    result = calc_result("print(1)\n", " 1.\n")
    value = safe_reward("correct", broken, None, [TASK], 0, result, log)  # type: ignore[arg-type]
    assert value == 0.0
    taken = log.take()
    assert taken["reward_failures"] == [
        {
            "term": "correct",
            "task": TASK.text,
            "reason": "RuntimeError: the scorer's sandbox is gone",
        }
    ]
    assert taken["outcomes"] == {"scoring error": 1}
    assert log.take() == {"outcomes": {}, "reward_failures": []}


def test_rows_without_a_result_or_task_get_zero_not_a_crash(
    quick: tuple[Scorer, ActionRunner],
) -> None:
    log = RewardLog()
    (correct,) = reward_functions([RewardTerm("correct", 1.0)], quick[0], [TASK], log)
    assert correct(["a", "b"], task_index=[0, 5], **{RESULT_KEY: [None, None]}) == [0.0, 0.0]
    assert correct(["a"]) == [0.0]
    reasons = [f["reason"] for f in log.take()["reward_failures"]]
    assert len(reasons) == 3 and "no llmos_result" in reasons[0]


def test_stopped_term_and_unknown_terms(quick: tuple[Scorer, ActionRunner]) -> None:
    log = RewardLog()
    (stopped,) = reward_functions([RewardTerm("stopped", 0.1)], quick[0], [TASK], log)
    done = calc_result("print(1)\n", " 1.\n")
    cut = calc_result("print(1)\n", " 1", stop="max_tokens")
    assert stopped(["a", "b"], task_index=[0, 0], **{RESULT_KEY: [done, cut]}) == [1.0, 0.0]
    assert stopped.__name__ == "stopped" and set(TERMS) == {"correct", "ran", "stopped"}
    with pytest.raises(LlmosError, match="unknown reward term 'speed'"):
        reward_functions([RewardTerm("speed", 1.0)], quick[0], [TASK], log)


def test_shipped_train_tasks_share_no_task_with_the_held_out_set() -> None:
    from llmos_grammar.eval import load_tasks

    folder = Path(__file__).resolve().parent.parent / "examples" / "calculator"
    train = load_tasks(str(folder / "train_tasks.jsonl")).tasks
    held = load_tasks(str(folder / "tasks.jsonl")).tasks
    norm = lambda text: " ".join(text.lower().split())  # noqa: E731
    assert len(train) >= 100
    assert not {norm(t.text) for t in train} & {norm(t.text) for t in held}
    assert len({norm(t.text) for t in train}) == len(train)
