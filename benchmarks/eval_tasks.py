"""Success rate on an example's task set: the llmos spec vs the plain model, side by side.

A thin front end of `llmos-eval` (llmos_grammar.eval) that keeps this script's
command line:
    python benchmarks/eval_tasks.py                      # the calculator's 30 tasks
    python benchmarks/eval_tasks.py --example sqlite_qa  # questions over shop.db
    options: [--spec FILE] [--limit N] [--model NAME] [--verbose] [--json FILE]
It runs `llmos-eval examples/EXAMPLE/spec.yaml --tasks examples/EXAMPLE/tasks.jsonl
--baseline plain`, greedy unless the spec asks for samples. A task counts as
solved when its answer appears in the final answer: for llmos the model's text
after the last action output, for the plain model its reply; numbers match as
numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def eval_argv(args: argparse.Namespace, json_out: str | None) -> list[str]:
    folder = ROOT / "examples" / args.example
    argv = [args.spec or str(folder / "spec.yaml"), "--tasks", str(folder / "tasks.jsonl")]
    argv += ["--baseline", "plain"]
    if args.limit:
        argv += ["--limit", str(args.limit)]
    if args.model:
        argv += ["--model", args.model]
    if json_out:
        argv += ["--json", json_out]
    return argv


def show_tasks(path: str) -> None:
    """One line per task: llmos and plain, solved or not, and what each answered."""
    doc = json.loads(Path(path).read_text())
    plain = doc.get("baseline", {}).get("results", [])
    for i, row in enumerate(doc["results"]):
        other = plain[i] if i < len(plain) else {"solved": False, "final": ""}
        marks = " ".join("ok " if r["solved"] else "BAD" for r in (row, other))
        print(f"{marks} {row['task']}")
        print("  llmos:", row["final"].replace("\n", "\\n"), f"({row['outcome']})")
        print("  plain:", other["final"].replace("\n", "\\n"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="calculator", help="a folder under examples/")
    parser.add_argument("--spec", help="another spec for the example's tasks (prompt variants)")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--verbose", action="store_true", help="each task and both answers")
    parser.add_argument("--json", metavar="FILE", help="also write the llmos-eval document here")
    args = parser.parse_args()

    from llmos_grammar.cli.eval import main as eval_main

    if not args.verbose:
        return eval_main(eval_argv(args, args.json))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.json or str(Path(tmp) / "eval.json")
        code = eval_main(eval_argv(args, out))
        if Path(out).is_file():
            show_tasks(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
