"""Greedy final answers of the examples on both engines: where llamacpp and transformers part.

For calculator, sqlite_qa and chat it runs `llmos-eval` on the example's task set
once per engine (greedy, same code path as users) and compares each task's final
answer; for extract (no task set) it runs a few sentences and compares the JSON.

    python benchmarks/compare_engines.py [--limit N] [--examples calculator,sqlite_qa,...]
Prints, per example: solved on each engine, answers shared, and the tasks that differ.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("transformers", "llamacpp")
TASK_SETS = ("calculator", "sqlite_qa", "chat")
SENTENCES = (
    "Ada Lovelace was 36 years old when she died.",
    "My neighbour Tom turned 52 last week.",
    "Grace, aged 85, still teaches programming.",
    "The new intern, Priya, is 23.",
)


def eval_finals(example: str, engine: str, limit: int) -> tuple[list[str], list[str], int]:
    """(tasks, final answers, solved) of one llmos-eval run."""
    folder = ROOT / "examples" / example
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        cmd = [sys.executable, "-m", "llmos_grammar.cli.main", "eval", str(folder / "spec.yaml")]
        cmd += ["--tasks", str(folder / "tasks.jsonl"), "--engine", engine, "--json", str(out)]
        cmd += ["--samples", "1", "--temperature", "0", "--no-progress"]
        cmd += ["--limit", str(limit)] if limit else []
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
        doc = json.loads(out.read_text())
    rows = doc["results"]
    return [r["task"] for r in rows], [r["final"] for r in rows], int(doc["solved"])


def extract_finals(engine: str) -> list[str]:
    from llmos_grammar.engines.select import load_for
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    machine = load(ROOT / "examples" / "extract" / "spec.yaml")
    with Runtime(machine, load_for(engine, machine.model)) as rt:
        return [rt.run(s).text for s in SENTENCES]


def report(example: str, tasks: list[str], finals: dict[str, list[str]]) -> None:
    pairs = list(zip(finals["transformers"], finals["llamacpp"], strict=True))
    same = sum(a == b for a, b in pairs)
    print(f"   {example}: {same}/{len(pairs)} final answers identical")
    for task, (a, b) in zip(tasks, pairs, strict=True):
        if a != b:
            print(
                f"      {task[:60]!r}\n         transformers: {a[:70]!r}\n"
                f"         llamacpp:     {b[:70]!r}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="first N tasks of each set")
    parser.add_argument("--examples", default=",".join((*TASK_SETS, "extract")))
    args = parser.parse_args()
    print("greedy runs on both engines (default model)")
    for example in args.examples.split(","):
        if example == "extract":
            finals = {engine: extract_finals(engine) for engine in ENGINES}
            report(example, list(SENTENCES), finals)
            continue
        finals, solved = {}, {}
        for engine in ENGINES:
            tasks, finals[engine], solved[engine] = eval_finals(example, engine, args.limit)
            print(f"   {example} on {engine}: solved {solved[engine]}/{len(tasks)}", flush=True)
        report(example, tasks, finals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
