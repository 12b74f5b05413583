"""Held-out accuracy before and after training, from two `llmos-eval --json` documents.

    llmos-eval SPEC --tasks TASKS --json before.json
    llmos-eval SPEC --tasks TASKS --adapter DIR --json after.json
    python benchmarks/train_heldout.py before.json after.json

Prints both accuracies, the tasks gained and lost, and a 95% paired bootstrap
interval of the change (tasks resampled with replacement, 10,000 times).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmos_grammar.train.heldout import paired_bootstrap


def solved_by_task(path: str) -> dict[str, bool]:
    doc = json.loads(Path(path).read_text())
    return {row["task"]: bool(row["solved"]) for row in doc["results"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    before, after = solved_by_task(args.before), solved_by_task(args.after)
    if set(before) != set(after):
        raise SystemExit("train_heldout: the two documents score different tasks")
    tasks = sorted(before)
    paired = paired_bootstrap([before[t] for t in tasks], [after[t] for t in tasks], seed=args.seed)
    n = len(tasks)
    print(f"tasks: {n}")
    print(f"before: {paired.before:.1%} ({sum(before.values())}/{n})")
    print(f"after:  {paired.after:.1%} ({sum(after.values())}/{n})")
    print(
        f"change: {paired.after - paired.before:+.1%}, 95% paired bootstrap "
        f"[{paired.low:+.1%}, {paired.high:+.1%}]; gained {paired.gained}, lost {paired.lost}"
    )
    for task in tasks:
        if before[task] != after[task]:
            print(f"  {'gained' if after[task] else 'lost  '}: {task}")


if __name__ == "__main__":
    main()
