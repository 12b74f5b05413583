"""The calculator's generated held-out set: reproduced by its generator, disjoint from training."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

from llmos_grammar.eval import load_tasks

FOLDER = Path(__file__).resolve().parent.parent / "examples" / "calculator"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_train_tasks", FOLDER / "make_train_tasks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def normalized(text: str) -> str:
    """A task's text compared loosely: case and runs of whitespace do not count."""
    return " ".join(text.lower().split())


def texts(name: str) -> list[str]:
    return [normalized(t.text) for t in load_tasks(str(FOLDER / name)).tasks]


def test_held_out_set_has_300_distinct_tasks_that_load() -> None:
    tasks = load_tasks(str(FOLDER / "heldout.jsonl")).tasks
    assert len(tasks) >= 300
    assert len({normalized(t.text) for t in tasks}) == len(tasks)
    assert all(t.scorer == "answer" and t.answer is not None for t in tasks)


def test_held_out_set_is_disjoint_from_training_and_hand_written_tasks() -> None:
    held = set(texts("heldout.jsonl"))
    train, hand = set(texts("train_tasks.jsonl")), set(texts("tasks.jsonl"))
    assert len(train) == 240 and len(hand) == 30
    assert held & train == set()
    assert held & hand == set()
    assert train & hand == set()


def test_generator_reproduces_both_shipped_files_exactly() -> None:
    module = generator()
    for name, file in (("train", "train_tasks.jsonl"), ("heldout", "heldout.jsonl")):
        text = (FOLDER / file).read_text(encoding="utf-8")
        assert module.jsonl(module.make_set(name)) == text, f"{file} is not what its seed makes"


def test_held_out_set_comes_from_the_training_templates_with_another_seed() -> None:
    module = generator()
    assert module.SETS["heldout"].seed != module.SETS["train"].seed

    def shape(text: str) -> str:
        return re.sub(r"\d+", "N", text)

    templates = {re.sub(r"\{\w+\}", "N", template) for template, _, _ in module.TEMPLATES}
    held = [json.loads(line)["task"] for line in (FOLDER / "heldout.jsonl").open()]
    assert {shape(t) for t in held} == templates  # every template, and nothing else


def test_answers_are_the_templates_arithmetic() -> None:
    rows = [json.loads(line) for line in (FOLDER / "heldout.jsonl").open()]
    checked = 0
    for row in rows:
        plus = re.fullmatch(r"What is (\d+) plus (\d+)\?", row["task"])
        times = re.fullmatch(r"What is (\d+) times (\d+)\?", row["task"])
        if plus:
            assert row["answer"] == int(plus[1]) + int(plus[2])
        elif times:
            assert row["answer"] == int(times[1]) * int(times[2])
        checked += bool(plus or times)
    assert checked >= 20


def test_an_excluded_file_is_skipped(tmp_path: Path) -> None:
    module = generator()
    first = module.make(40, 5)
    path = tmp_path / "first.jsonl"
    path.write_text(module.jsonl(first), encoding="utf-8")
    again = module.make(40, 5, [path])
    assert {r["task"] for r in first} & {r["task"] for r in again} == set()
    assert len(again) == 40
