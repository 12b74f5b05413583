# ruff: noqa: E501  (the templates table reads best one template a line)
"""Write the generated calculator task sets: `train_tasks.jsonl` and `heldout.jsonl`.

Both come from the same templates (the hand-written `tasks.jsonl`'s kinds:
arithmetic, powers, percentages, remainders, word problems) with other numbers
and another seed. A task whose text is in `tasks.jsonl` is never written, and
the held-out set also skips every text of the training set, so both stay
unseen by training. Each set is reproduced exactly by its seed:

    python examples/calculator/make_train_tasks.py                 # train_tasks.jsonl
    python examples/calculator/make_train_tasks.py --set heldout   # heldout.jsonl
    python examples/calculator/make_train_tasks.py --count 50 --seed 3 --out my.jsonl \
        --exclude examples/calculator/train_tasks.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
Number = int | float


R = tuple[int, int]
# (template, ranges of its numbers, what the template also needs: "answer" and derived numbers)
TEMPLATES: list[tuple[str, dict[str, R], Callable[[dict[str, int]], dict[str, Number]]]] = [
    ("What is {a} minus {b}?", {"a": (200, 9999), "b": (10, 199)}, lambda v: {"answer": v["a"] - v["b"]}),
    ("What is {a} times {b}?", {"a": (11, 99), "b": (11, 99)}, lambda v: {"answer": v["a"] * v["b"]}),
    ("What is {a} plus {b}?", {"a": (100, 9999), "b": (100, 9999)}, lambda v: {"answer": v["a"] + v["b"]}),
    ("What is {ab} divided by {b}?", {"a": (6, 60), "b": (3, 25)}, lambda v: {"ab": v["a"] * v["b"], "answer": v["a"]}),
    ("What is {a} to the power of {b}?", {"a": (2, 9), "b": (3, 9)}, lambda v: {"answer": v["a"] ** v["b"]}),
    ("What is {a} squared?", {"a": (11, 99)}, lambda v: {"answer": v["a"] ** 2}),
    ("What is {p}% of {b}?", {"p": (1, 19), "b": (2, 50)}, lambda v: {"p": 5 * v["p"], "b": 20 * v["b"], "answer": v["p"] * v["b"]}),
    ("What is the remainder when {a} is divided by {b}?", {"a": (100, 5000), "b": (3, 13)}, lambda v: {"answer": v["a"] % v["b"]}),
    ("What is the sum of the first {n} natural numbers?", {"n": (10, 500)}, lambda v: {"answer": v["n"] * (v["n"] + 1) // 2}),
    ("What is the square root of {aa}?", {"a": (11, 99)}, lambda v: {"aa": v["a"] ** 2, "answer": v["a"]}),
    ("What is {n} factorial?", {"n": (4, 20)}, lambda v: {"answer": math.factorial(v["n"])}),
    ("What is {a} plus {b} plus {c}?", {"a": (10, 99), "b": (10, 99), "c": (10, 99)}, lambda v: {"answer": v["a"] + v["b"] + v["c"]}),
    ("A shop sells cups at {p} dollars each. How much do {n} cups cost?", {"p": (2, 19), "n": (5, 60)}, lambda v: {"answer": v["p"] * v["n"]}),
    ("Anna has {a} stickers and gives away {b}. How many stickers does she have left?", {"a": (30, 300), "b": (5, 29)}, lambda v: {"answer": v["a"] - v["b"]}),
    ("A bus travels at {v} km per hour for {t} hours. How far does it travel in km?", {"v": (30, 120), "t": (2, 9)}, lambda v: {"answer": v["v"] * v["t"]}),
    ("A garden is {a} m long and {b} m wide. What is its area in square m?", {"a": (5, 60), "b": (3, 40)}, lambda v: {"answer": v["a"] * v["b"]}),
    ("Ben saves {s} dollars a week. How much does he save in {w} weeks?", {"s": (5, 90), "w": (4, 60)}, lambda v: {"answer": v["s"] * v["w"]}),
    ("A crate holds {k} bottles. How many bottles are in {n} crates?", {"k": (6, 48), "n": (5, 200)}, lambda v: {"answer": v["k"] * v["n"]}),
    ("How many seconds are there in {h} hours?", {"h": (2, 48)}, lambda v: {"answer": 3600 * v["h"]}),
    ("How many minutes are there in {d} days?", {"d": (2, 30)}, lambda v: {"answer": 1440 * v["d"]}),
    ("If {n} tickets cost {nc} dollars, how much does one ticket cost?", {"n": (2, 12), "c": (3, 40)}, lambda v: {"nc": v["n"] * v["c"], "answer": v["c"]}),
    ("What is the average of {a}, {b}, {c} and {d}?", {k: (2, 60) for k in "abcd"}, lambda v: {"answer": (v["a"] + v["b"] + v["c"] + v["d"]) / 4}),
]  # fmt: skip


def one(rng: random.Random, index: int) -> tuple[str, Number]:
    """A task of template `index` with fresh numbers, and its answer."""
    template, ranges, derive = TEMPLATES[index % len(TEMPLATES)]
    values = {name: rng.randint(low, high) for name, (low, high) in ranges.items()}
    fields: dict[str, Number] = {**values, **derive(values)}
    return template.format(**fields), fields["answer"]


@dataclass(frozen=True)
class TaskFile:
    """A shipped set: how many tasks, the seed, the file, and the sets it must not overlap."""

    count: int
    seed: int
    out: str
    exclude: tuple[str, ...] = ()


SETS = {
    "train": TaskFile(240, 7, "train_tasks.jsonl"),
    "heldout": TaskFile(300, 2023, "heldout.jsonl", exclude=("train_tasks.jsonl",)),
}
Row = dict[str, int | float | str]


def texts(path: Path) -> set[str]:
    """The task texts of a JSONL task file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["task"] for line in lines if line.strip()}


def held_out() -> set[str]:
    """The task texts of `tasks.jsonl` (the hand-written evaluation set)."""
    return texts(HERE / "tasks.jsonl")


def make(count: int, seed: int, exclude: Sequence[Path] = ()) -> list[Row]:
    """`count` distinct tasks, cycling through the templates, none in `tasks.jsonl` or in
    the `exclude` files."""
    rng, skip, seen = random.Random(seed), held_out(), set()
    for path in exclude:
        skip |= texts(path)
    tasks: list[Row] = []
    for attempt in range(100 * count):
        if len(tasks) == count:
            break
        text, answer = one(rng, attempt)
        if text in skip or text in seen:
            continue
        seen.add(text)
        value = int(answer) if float(answer).is_integer() else answer
        tasks.append({"task": text, "answer": value})
    if len(tasks) < count:
        raise SystemExit(f"only {len(tasks)} distinct tasks of {count}: the templates ran out")
    return tasks


def make_set(name: str) -> list[Row]:
    """The shipped set `name` ("train" or "heldout"), exactly as its file holds it."""
    spec = SETS[name]
    return make(spec.count, spec.seed, [HERE / e for e in spec.exclude])


def jsonl(rows: Sequence[Row]) -> str:
    """The task file's text: one JSON object a line."""
    return "".join(json.dumps(row) + "\n" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="train", help="a shipped set")
    parser.add_argument("--count", type=int, help="tasks to write (default: the set's)")
    parser.add_argument("--seed", type=int, help="the numbers' seed (default: the set's)")
    parser.add_argument("--out", help="the file to write (default: the set's, next to this)")
    parser.add_argument(
        "--exclude", action="append", metavar="FILE", help="also skip this file's task texts"
    )
    args = parser.parse_args()
    spec = SETS[args.set]
    exclude = [Path(e) for e in args.exclude] if args.exclude else [HERE / e for e in spec.exclude]
    count = spec.count if args.count is None else args.count
    rows = make(count, spec.seed if args.seed is None else args.seed, exclude)
    out = Path(args.out) if args.out else HERE / spec.out
    out.write_text(jsonl(rows), encoding="utf-8")
    print(f"wrote {len(rows)} tasks to {out}")


if __name__ == "__main__":
    main()
