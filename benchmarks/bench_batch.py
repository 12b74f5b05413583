"""Batched decoding: the calculator's task set at several batch sizes, in one run.

For each batch size: sampled tokens per second over the whole set (wall clock,
actions included), wall time, whether every greedy result is identical to
batch 1's (same completion token ids), and the model's work: forward passes and
the tokens they computed (prompts, forced and injected text, sampled tokens).
The spec's wall-clock budget is lifted so that a busy machine cannot cut rows
short (which would change results).

    python benchmarks/bench_batch.py [--sizes 1,4,8,16] [--limit N] [--model NAME] [--dtype D]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "calculator"


def measure(rt: Any, tasks: list[str], size: int) -> tuple[float, int, list[Any], Any]:
    """Wall time, sampled tokens, results, and what the runtime's engine did for the batch."""
    from llmos_grammar.engines import EngineCounters

    counters = rt.engine().counters
    passes, fed = counters.forward_passes, counters.tokens_fed
    start = time.perf_counter()
    results = [row[0] for row in rt.run_batch(tasks, batch=size)]
    wall = time.perf_counter() - start
    done = EngineCounters(counters.forward_passes - passes, counters.tokens_fed - fed)
    return wall, sum(r.stats.generated_tokens for r in results), results, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8,16")
    parser.add_argument("--limit", type=int, default=0, help="first N tasks (0: all)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--dtype", default=None, help="float32, bfloat16 (default: the spec's)")
    args = parser.parse_args()

    from dataclasses import replace

    from llmos_grammar.ir import ModelRef
    from llmos_grammar.models import load_model
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    machine = load(EXAMPLE / "spec.yaml")
    # greedy; no wall-clock budget, so that a loaded machine cannot cut rows short
    machine = replace(
        machine,
        sampling=replace(machine.sampling, temperature=0.0),
        budgets=replace(machine.budgets, wall_s=3600.0),
    )
    lines = (EXAMPLE / "tasks.jsonl").read_text().splitlines()
    tasks = [json.loads(line)["task"] for line in lines if line.strip()]
    if args.limit:
        tasks = tasks[: args.limit]
    sizes = [int(s) for s in args.sizes.split(",")]
    ref = ModelRef(name=args.model) if args.model else machine.model
    lm = load_model(replace(ref, dtype=args.dtype) if args.dtype else ref)
    dtype = str(lm.model.dtype).removeprefix("torch.")
    print(f"{len(tasks)} calculator tasks, greedy, model {lm.name} ({dtype})")
    with Runtime(machine, lm) as rt:
        rt.run_batch(tasks[:1], batch=1)  # warm-up: thread pools, sandbox standby
        rows = []
        reference: list[Any] | None = None
        for size in sizes:
            wall, tokens, results, counters = measure(rt, tasks, size)
            ids = [r.completion_ids for r in results]
            if reference is None:
                reference = ids
            same = sum(a == b for a, b in zip(ids, reference, strict=True))
            rows.append((size, wall, tokens, same))
            print(
                f"batch {size:2d}: {tokens / wall:6.1f} tokens/s, {wall:6.1f} s wall, "
                f"{tokens} tokens, {same}/{len(tasks)} results identical to batch {sizes[0]}; "
                f"{counters.forward_passes} forward passes computed {counters.tokens_fed} tokens "
                f"({counters.tokens_fed / max(1, counters.forward_passes):.1f} a pass)",
                flush=True,
            )
    base = rows[0][2] / rows[0][1]
    print("tokens/s relative to batch", sizes[0])
    for size, wall, tokens, _ in rows:
        print(f"   batch {size:2d}: {tokens / wall / base:4.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
