"""The vllm engine side by side with transformers, and the cost of one request per segment.

1. The calculator's task set through `llmos-eval --batch 8` on both engines
   (tokens/s and wall time as llmos-eval reports them; the vLLM server is started
   once, beforehand, and its start-up time is printed apart).
2. Segments against plain generation on the same server: the calculator's runs
   again, with each action answered at once from the first pass's results (so
   only decoding is timed), against one plain request per task that generates
   as many tokens as the run's completion (sampled + forced + injected), same
   prompt ids, 8 in flight. Target: at most 1.3x.

    python benchmarks/bench_vllm.py [--limit N] [--engine-arg KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "calculator" / "spec.yaml"
TASKS = ROOT / "examples" / "calculator" / "tasks.jsonl"
BATCH = 8


def eval_run(engine: str, limit: int, extra: list[str]) -> dict[str, Any]:
    """One llmos-eval process; its JSON document plus the process's wall time."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "eval.json"
        command = [sys.executable, "-m", "llmos_grammar.cli.main", "eval", str(SPEC)]
        command += ["--tasks", str(TASKS), "--batch", str(BATCH), "--engine", engine]
        command += ["--json", str(out), "--no-progress", *extra]
        if limit:
            command += ["--limit", str(limit)]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        doc: dict[str, Any] = json.loads(out.read_text())
        doc["process_s"] = time.perf_counter() - start
        return doc


class Replay:
    """An action runner answering each (action, text) with a recorded result at once."""

    def __init__(self, results: dict[tuple[str, str], Any]) -> None:
        self.results = results

    def run(self, action: str, text: str) -> Any:
        from llmos_grammar.results import ActionResult

        return self.results.get((action, text), ActionResult(stdout=""))

    def close(self) -> None:
        pass


def segments_vs_plain(lm: Any, tasks: list[str]) -> tuple[float, float, int, int]:
    """(segment wall, plain wall, completion tokens, segment requests) on the same server."""
    from llmos_grammar.engines.vllm.server import http_json
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    machine = load(SPEC)
    with Runtime(machine, lm) as rt:  # real actions: record their results
        first = [r[0] for r in rt.run_batch(tasks, batch=BATCH)]
    recorded = {(a.action, a.input): a.result for r in first for a in r.actions}
    with Runtime(machine, lm, runner=Replay(recorded)) as rt:
        engine = rt.new_engine()
        before = engine.counters.forward_passes
        start = time.perf_counter()
        results = [r[0] for r in rt.run_batch(tasks, batch=BATCH)]
        segment_wall = time.perf_counter() - start
        requests = engine.counters.forward_passes - before
    server = lm.model

    def plain(result: Any) -> None:
        body = {
            "model": server.model,
            "prompt": list(result.prompt_ids),
            "max_tokens": len(result.completion_ids),
            "min_tokens": len(result.completion_ids),
            "ignore_eos": True,
            "temperature": 0.0,
        }
        http_json(f"{server.url}/v1/completions", body, timeout=600)

    start = time.perf_counter()
    with ThreadPoolExecutor(BATCH) as pool:
        list(pool.map(plain, results))
    plain_wall = time.perf_counter() - start
    tokens = sum(len(r.completion_ids) for r in results)
    return segment_wall, plain_wall, tokens, requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="first N tasks (0: all)")
    parser.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()

    from llmos_grammar.engines.vllm import load_vllm
    from llmos_grammar.engines.vllm.args import parse_engine_args
    from llmos_grammar.ir import DEFAULT_MODEL, ModelRef

    start = time.perf_counter()
    lm = load_vllm(ModelRef(name=DEFAULT_MODEL), parse_engine_args(args.engine_arg))
    print(f"vLLM server ready in {time.perf_counter() - start:.1f} s", flush=True)
    try:
        url = ["--engine-arg", f"url={lm.model.url}"]
        docs = [("vllm", eval_run("vllm", args.limit, url))]
        if not args.skip_transformers:
            docs.append(("transformers", eval_run("transformers", args.limit, [])))
        print(f"\nllmos-eval, calculator, batch {BATCH}, {docs[0][1]['total']} tasks, greedy")
        print(f"{'':14}" + "".join(f"{name:>14}" for name, _ in docs))
        for key, fmt in (
            ("accuracy", "{:.2f}"),
            ("tokens_per_s", "{:.1f}"),
            ("wall_s", "{:.1f} s"),
        ):
            print(f"{key:14}" + "".join(f"{fmt.format(d[key]):>14}" for _, d in docs))
        print(f"{'process':14}" + "".join(f"{d['process_s']:>12.1f} s" for _, d in docs))
        if len(docs) == 2:
            ratio = docs[1][1]["wall_s"] / docs[0][1]["wall_s"]
            print(f"vllm is {ratio:.2f}x faster (wall, excluding the server's start-up)")

        lines = TASKS.read_text().splitlines()
        tasks = [json.loads(line)["task"] for line in lines[: args.limit or None]]
        seg, plain, tokens, requests = segments_vs_plain(lm, tasks)
        print(f"\nsegments vs plain generation, {len(tasks)} tasks, {BATCH} in flight")
        print(f"segments: {seg:.2f} s ({requests} requests), plain: {plain:.2f} s, {tokens} tokens")
        print(f"cost ratio: {seg / plain:.2f}x (target <= 1.3x)")
    finally:
        lm.model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
