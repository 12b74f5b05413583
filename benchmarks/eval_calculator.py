"""Calculator success rate: the llmos spec (code, run, answer) vs the plain model, direct.

Both use the same model, greedy decoding and the same decode loop, in one run:
    python benchmarks/eval_calculator.py [--limit N] [--model NAME] [--verbose]
A task counts as solved when a number equal to its answer appears in the text the
run ends with: for llmos the text after the last [/OUTPUT], for the plain model its reply.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "calculator" / "spec.yaml"
TASKS = ROOT / "examples" / "calculator" / "tasks.jsonl"
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> list[float]:
    found = []
    for match in NUMBER.findall(text):
        try:
            found.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


def solved(text: str, answer: float) -> bool:
    return any(abs(n - answer) <= 1e-6 * max(1.0, abs(answer)) for n in numbers(text))


def final_answer(result_text: str) -> str:
    """The text after the last injected output block (empty when no code ever ran)."""
    marker = "[/OUTPUT]"
    return result_text.rsplit(marker, 1)[1] if marker in result_text else ""


def plain_machine(machine: object) -> object:
    """The same model and chat template, no system text, no code: one free text state."""
    from llmos_grammar.ir import Budgets, FinalState, Prompt, TextState

    states = {"answer": TextState("answer", on_eos="end", max_tokens=64), "end": FinalState("end")}
    return replace(
        machine,  # type: ignore[type-var]
        start="answer",
        states=states,
        prompt=Prompt(system="", chat_template=True),
        budgets=Budgets(max_tokens=64, max_actions=0, wall_s=60),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="also write per-task results here")
    args = parser.parse_args()

    from llmos_grammar.models import load_model
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec import load

    machine = load(SPEC)
    lm = load_model(args.model or machine.model)
    tasks = [json.loads(line) for line in TASKS.read_text().splitlines() if line.strip()]
    if args.limit:
        tasks = tasks[: args.limit]
    runtime = Runtime(machine, lm)
    plain = Runtime(plain_machine(machine), lm)  # type: ignore[arg-type]
    rows = []
    t0 = time.perf_counter()
    for item in tasks:
        task, answer = item["task"], float(item["answer"])
        started = time.perf_counter()
        res = runtime.run(task)
        llmos_s = time.perf_counter() - started
        started = time.perf_counter()
        direct = plain.run(task)
        plain_s = time.perf_counter() - started
        row = {
            "task": task,
            "answer": item["answer"],
            "llmos_ok": solved(final_answer(res.text), answer),
            "output_ok": any(solved(a.result.stdout, answer) for a in res.actions),
            "plain_ok": solved(direct.text, answer),
            "llmos_stop": res.stop_reason,
            "actions": len(res.actions),
            "llmos_s": round(llmos_s, 2),
            "plain_s": round(plain_s, 2),
            "llmos_text": res.text,
            "plain_text": direct.text,
        }
        rows.append(row)
        mark = f"{'ok ' if row['llmos_ok'] else 'BAD'} {'ok ' if row['plain_ok'] else 'BAD'}"
        print(f"{mark} {task}", flush=True)
        if args.verbose:
            print("  llmos:", res.text.replace("\n", "\\n"))
            print("  plain:", direct.text.replace("\n", "\\n"))
    runtime.close()
    n = len(rows)
    llmos_rate = sum(r["llmos_ok"] for r in rows) / n
    output_rate = sum(r["output_ok"] for r in rows) / n
    plain_rate = sum(r["plain_ok"] for r in rows) / n
    print(f"\ntasks: {n}  model: {lm.name}  total {time.perf_counter() - t0:.0f} s")
    print(f"llmos (code, run, answer): {llmos_rate:.0%} solved")
    print(f"  program output correct:  {output_rate:.0%}")
    print(f"plain model, direct:       {plain_rate:.0%} solved")
    print(
        f"mean time per task: llmos {sum(r['llmos_s'] for r in rows) / n:.1f} s, "
        f"plain {sum(r['plain_s'] for r in rows) / n:.1f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
