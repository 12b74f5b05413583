"""Success rate on a task set: an llmos spec (act, observe, answer) vs the plain model.

Both use the same model, greedy decoding and the same decode loop, in one run:
    python benchmarks/eval_tasks.py                      # the calculator's 30 tasks
    python benchmarks/eval_tasks.py --example sqlite_qa  # questions over shop.db
    options: [--limit N] [--model NAME] [--verbose] [--json FILE]
A task counts as solved when its answer appears in the text the run ends with:
for llmos the model's text after the last injected action output, for the plain
model its reply. Numeric answers match as numbers; others case-insensitively.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> list[float]:
    found = []
    for match in NUMBER.findall(text):
        try:
            found.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


def solved(text: str, answer: float | str) -> bool:
    if isinstance(answer, str):
        return answer.lower() in text.lower()
    return any(abs(n - answer) <= 1e-6 * max(1.0, abs(answer)) for n in numbers(text))


def final_answer(result: Any) -> str:
    """What the model wrote after the last injected action output; its whole reply when no
    action ran (a free conversation may answer without code)."""
    segments = list(result.transcript)
    last = max((i for i, s in enumerate(segments) if s.source == "injected"), default=None)
    if last is None or not result.actions:
        return "".join(s.text for s in segments if s.source == "model")
    return "".join(s.text for s in segments[last + 1 :] if s.source == "model")


def entered(result: Any, states: set[str]) -> bool:
    """Whether the run reached one of `states` (for a chat: the model opened a code fence)."""
    return any(s.state in states for s in result.transcript if s.source != "prompt")


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
    parser.add_argument("--example", default="calculator", help="a folder under examples/")
    parser.add_argument("--spec", help="another spec for the example's tasks (prompt variants)")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="also write per-task results here")
    args = parser.parse_args()

    from llmos_grammar.models import load_model
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.load import load

    folder = ROOT / "examples" / args.example
    machine = load(args.spec or folder / "spec.yaml")
    lm = load_model(args.model or machine.model)
    lines = (folder / "tasks.jsonl").read_text().splitlines()
    tasks = [json.loads(line) for line in lines if line.strip()]
    if args.limit:
        tasks = tasks[: args.limit]
    grammar_states = {n for n, s in machine.states.items() if s.type == "grammar"}
    runtime = Runtime(machine, lm)
    plain = Runtime(plain_machine(machine), lm)  # type: ignore[arg-type]
    rows = []
    t0 = time.perf_counter()
    for item in tasks:
        task, answer = item["task"], item["answer"]
        started = time.perf_counter()
        res = runtime.run(task)
        llmos_s = time.perf_counter() - started
        started = time.perf_counter()
        direct = plain.run(task)
        plain_s = time.perf_counter() - started
        row = {
            "task": task,
            "answer": item["answer"],
            "llmos_ok": solved(final_answer(res), answer),
            "output_ok": any(solved(a.output, answer) for a in res.actions),
            "plain_ok": solved(direct.text, answer),
            "llmos_stop": res.stop_reason,
            "actions": len(res.actions),
            "code": entered(res, grammar_states),
            "ran_ok": any(a.result.ok for a in res.actions),
            "llmos_s": round(llmos_s, 2),
            "plain_s": round(plain_s, 2),
            "llmos_text": res.text,
            "plain_text": direct.text,
        }
        rows.append(row)
        mark = f"{'ok ' if row['llmos_ok'] else 'BAD'} {'ok ' if row['plain_ok'] else 'BAD'}"
        code = f"{'code' if row['code'] else '----'} {row['actions']}"
        print(f"{mark} {code} {task}", flush=True)
        if args.verbose:
            print("  llmos:", res.text.replace("\n", "\\n"))
            print("  plain:", direct.text.replace("\n", "\\n"))
    runtime.close()
    n = len(rows)
    llmos_rate = sum(r["llmos_ok"] for r in rows) / n
    output_rate = sum(r["output_ok"] for r in rows) / n
    plain_rate = sum(r["plain_ok"] for r in rows) / n
    print(f"\ntasks: {n}  model: {lm.name}  total {time.perf_counter() - t0:.0f} s")
    print(f"llmos ({args.example}):     {llmos_rate:.0%} solved")
    print(f"  wrote code (grammar state): {sum(r['code'] for r in rows) / n:.0%}")
    print(f"  an action ran without error: {sum(r['ran_ok'] for r in rows) / n:.0%}")
    print(f"  action output correct:  {output_rate:.0%}")
    print(f"plain model, direct:      {plain_rate:.0%} solved")
    print(f"llmos / plain:            {llmos_rate / plain_rate:.1f}x" if plain_rate else "")
    print(
        f"mean time per task: llmos {sum(r['llmos_s'] for r in rows) / n:.1f} s, "
        f"plain {sum(r['plain_s'] for r in rows) / n:.1f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
