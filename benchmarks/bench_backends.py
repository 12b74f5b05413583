"""Constraint backends side by side: Outlines (outlines-core) and llguidance.

1. schemas: for each JSON schema under benchmarks/schemas/ (its `examples[0]` is the
   instance walked), the backend `auto` picks and why, compile time per backend (Outlines:
   a cold build in a fresh cache, then a load from the disk cache) and mask time per token
   (p50, p99) along the instance's tokens followed by the close delimiter;
2. examples: tokens/s of the extract and calculator examples with every regex/JSON state on
   each backend (Lark states stay on llguidance, as in Outlines itself).

    python benchmarks/bench_backends.py [--model NAME] [--tasks 3] [--skip-examples|--skip-schemas]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "benchmarks" / "schemas"
CLOSE = "[/JSON]"
EXTRACT_TASKS = [
    "Ada Lovelace was 36 when she died.",
    "My neighbour Tom just turned 71.",
    "The new intern, Priya, is 23 years old.",
    "Grace Hopper retired from the Navy at the age of 79.",
    "Our daughter Mia is 4.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def mask_times(compiled: Any, tokens: list[int], words: int) -> list[float]:
    """Seconds per mask along `tokens` (one mask before each token)."""
    import torch

    from llmos_grammar.constraints import fill_masks

    bits = torch.zeros((1, words), dtype=torch.int32)
    matcher = compiled.new()
    times = []
    for token in tokens:
        started = time.perf_counter()
        fill_masks([(matcher, 0)], bits)
        times.append(time.perf_counter() - started)
        if not matcher.consume([token]):
            raise RuntimeError(f"{compiled.name}: token {token} rejected ({matcher.error})")
    return times


def schema_row(path: Path, table: Any, tokenizer: Any) -> dict[str, Any]:
    from llmos_grammar.constraints import compile_constraint, outlines_build, plan
    from llmos_grammar.errors import BackendError, Location
    from llmos_grammar.ir import GrammarSource

    schema = json.loads(path.read_text())
    instance = schema.pop("examples")[0]
    source = GrammarSource("json_schema", json.dumps(schema), Location(str(path)))
    compact = json.dumps(instance, separators=(",", ":"))  # the default JSON whitespace policy
    tokens = list(tokenizer.encode(compact + CLOSE, add_special_tokens=False))
    how = plan(source, CLOSE)
    row: dict[str, Any] = {"schema": path.stem, "auto": how.backend, "why": how.reason}
    words = (table.vocab_size + 31) // 32
    for backend in ("outlines", "llguidance"):
        outlines_build._LOADED.clear()
        started = time.perf_counter()
        try:
            compiled, _ = compile_constraint(source, table, CLOSE, path.stem, backend)
        except BackendError as exc:
            row[backend] = {"error": exc.message}
            continue
        entry = {"compile_s": time.perf_counter() - started}
        if backend == "outlines":
            outlines_build._LOADED.clear()
            started = time.perf_counter()
            compile_constraint(source, table, CLOSE, path.stem, backend)
            entry["load_s"] = time.perf_counter() - started
        times = mask_times(compiled, tokens, words)
        entry["mask_p50_us"] = percentile(times, 0.5) * 1e6
        entry["mask_p99_us"] = percentile(times, 0.99) * 1e6
        row[backend] = entry
    return row


def example_rate(lm: Any, spec: str, backend: str, tasks: list[str]) -> str:
    """tokens/s over `tasks` with every state's backend set to `backend` ("auto" as written)."""
    from llmos_grammar.errors import LlmosError
    from llmos_grammar.ir import GrammarState, TextState
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    machine = load(ROOT / "examples" / spec / "spec.yaml")
    if backend != "auto":
        states = {
            name: replace(s, backend=backend)
            if isinstance(s, GrammarState | TextState)
            and s.constraint is not None
            and s.constraint.kind != "lark"
            else s
            for name, s in machine.states.items()
        }
        machine = replace(machine, states=states)
    try:
        runtime = Runtime(machine, lm)
    except LlmosError as exc:
        return f"n/a ({exc.message})"
    tokens, seconds = 0, 0.0
    with runtime:
        for task in tasks:
            stats = runtime.run(task).stats
            tokens += stats.generated_tokens
            seconds += stats.decode_s
    backends = sorted({how.backend for how in runtime.enforcement.values()})
    return f"{tokens / seconds:.1f} tok/s ({tokens} tokens; states on {', '.join(backends)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--tasks", type=int, default=3, help="tasks per example")
    parser.add_argument("--skip-examples", action="store_true")
    parser.add_argument("--skip-schemas", action="store_true")
    args = parser.parse_args()
    from llmos_grammar.models import load_model

    lm = load_model(args.model or "smollm2-135m-instruct")
    table = lm.token_table()
    os.environ["LLMOS_CACHE"] = tempfile.mkdtemp(prefix="llmos-bench-")  # cold index builds
    print(f"model {lm.name}, vocabulary {table.vocab_size}, cache {os.environ['LLMOS_CACHE']}")
    if args.skip_schemas:
        return examples(lm, args.tasks)
    print(
        "\n| schema | auto | outlines compile / cache load | outlines mask p50 / p99 |"
        " llguidance compile | llguidance mask p50 / p99 |"
    )
    print("|---|---|---|---|---|---|")
    for path in sorted(SCHEMAS.glob("*.json")):
        row = schema_row(path, table, lm.tokenizer)
        print(format_row(row), flush=True)
        if row["why"]:
            print(f"|  | ↳ {row['why']} | | | | |")
    if args.skip_examples:
        return 0
    return examples(lm, args.tasks)


def examples(lm: Any, count: int) -> int:
    calculator = [
        json.loads(line)["task"]
        for line in (ROOT / "examples" / "calculator" / "tasks.jsonl").read_text().splitlines()
        if line.strip()
    ]
    print("\n| example | auto | outlines | llguidance |\n|---|---|---|---|")
    for spec, tasks in (("extract", EXTRACT_TASKS), ("calculator", calculator)):
        cells = [
            example_rate(lm, spec, b, tasks[:count])
            for b in ("auto", "outlines", "llguidance")
        ]
        print(f"| {spec} | " + " | ".join(cells) + " |", flush=True)
    return 0


def format_row(row: dict[str, Any]) -> str:
    out = row["outlines"]
    llg = row["llguidance"]
    if "error" in out:
        outlines_cells = "n/a | n/a"
    else:
        outlines_cells = (
            f"{out['compile_s'] * 1000:.0f} ms / {out['load_s'] * 1000:.0f} ms | "
            f"{out['mask_p50_us']:.0f} / {out['mask_p99_us']:.0f} us"
        )
    llg_cells = (
        f"{llg['compile_s'] * 1000:.1f} ms | {llg['mask_p50_us']:.0f} / {llg['mask_p99_us']:.0f} us"
    )
    return f"| {row['schema']} | {row['auto']} | {outlines_cells} | {llg_cells} |"


if __name__ == "__main__":
    sys.exit(main())
