"""Every shipped example passes llmos-check, and its policy runs real inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos_grammar.actions import ActionRunner
from llmos_grammar.spec.check import check_paths
from llmos_grammar.spec.loader import load

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "examples").glob("*/spec.yaml"))


def test_there_are_examples_for_each_handler() -> None:
    names = {p.parent.name for p in SPECS}
    assert {"calculator", "sqlite_qa", "files", "shell", "http"} <= names


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.parent.name)
def test_example_is_clean(spec: Path) -> None:
    report, checked = check_paths([str(spec)])
    assert report.diagnostics == []
    assert checked[0].machine is not None


def test_shipped_policies_are_clean() -> None:
    report, checked = check_paths([str(ROOT / "policies")])
    assert len(checked) >= 5 and report.diagnostics == []


def run_example_action(example: str, text: str) -> tuple[str, str, bool]:
    machine = load(ROOT / "examples" / example / "spec.yaml")
    action = next(s.action for s in machine.states.values() if s.type == "action")  # type: ignore[union-attr]
    with ActionRunner(machine.policy) as runner:
        result = runner.run(action, text)
    return result.stdout + result.rows, result.stderr, result.ok


def test_sqlite_example_answers_from_the_database() -> None:
    out, _, ok = run_example_action(
        "sqlite_qa", "SELECT SUM(quantity) FROM orders WHERE customer_id = 2"
    )
    assert ok and "11" in out


def test_sqlite_example_refuses_writes() -> None:
    _, err, ok = run_example_action("sqlite_qa", "DELETE FROM orders")
    assert not ok and err


def test_files_example_reads_inside_and_not_outside() -> None:
    out, _, ok = run_example_action("files", "read meeting.txt")
    assert ok and "December 15" in out
    _, err, ok = run_example_action("files", "read ../../../policies/files.yaml")
    assert not ok and "outside" in err


def test_shell_example_runs_an_allowed_pipeline() -> None:
    out, _, ok = run_example_action("shell", "seq 1 10 | wc -l")
    assert ok and out.strip() == "10"


def test_shell_example_refuses_a_command_off_the_list() -> None:
    _, _, ok = run_example_action("shell", "rm -rf /tmp/x")
    assert not ok


def test_calculator_example_runs_python() -> None:
    out, _, ok = run_example_action("calculator", "print(sum(range(1, 101)))\n")
    assert ok and out.strip() == "5050"


TASK_FILES = sorted((ROOT / "examples").glob("*/tasks.jsonl"))


def test_the_task_sets_the_readme_measures_are_shipped() -> None:
    names = {p.parent.name for p in TASK_FILES}
    assert {"calculator", "sqlite_qa", "chat", "shell", "files"} <= names


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: p.parent.name)
def test_example_task_set_loads_with_answers(path: Path) -> None:
    from llmos_grammar.eval.tasks import load_tasks

    tasks = load_tasks(str(path))
    assert len(tasks.tasks) >= 10
    assert all(t.answer is not None or t.tests for t in tasks.tasks)
