"""The vllm engine side by side with transformers, and the cost of one request per segment.

1. The calculator's task set through `llmos-eval --batch 8` on both engines
   (tokens/s and wall time as llmos-eval reports them; the vLLM server is started
   once, beforehand, and its start-up time is printed apart; its prefix cache is
   emptied before the vllm run, and the transformers run is a fresh process).
2. Segments against plain generation on the same server, 8 in flight. A first,
   untimed pass runs the calculator's tasks with their real actions and records the
   results; the timed segment pass runs them again with each action answered at once
   from that record (so only decoding is timed). The baseline, "plain, same work",
   is one request per task that prefills the run's prompt followed by every token
   the run fed without sampling (forced and injected text), then decodes as many
   tokens as the run sampled: the same prefill and decode in one request (on vLLM,
   grammar-forced tokens count as fed although the server generated them under the
   grammar: the counters show it). "plain, decode all" decodes the whole completion
   instead (what this figure compared before; it decodes the text that segments
   prefill). The server's prefix cache is emptied before each timed pass, so no pass
   reuses another's keys; within a pass, rows share the system prompt's and their
   own earlier requests' keys, as in a real run (what else the server keeps between
   requests, such as compiled grammars, stays warm). The server's counters (prompt
   tokens, of them from the prefix cache, generated tokens, requests) are printed
   for each pass, so what differs is visible. Target: segments at most 1.3x "plain,
   same work".

The benchmark starts its server with VLLM_SERVER_DEV_MODE=1 for the
`/reset_prefix_cache` endpoint; a server passed with `--engine-arg url=...`
needs it too.

    python benchmarks/bench_vllm.py [--limit N] [--repeat R] [--skip-transformers]
        [--engine-arg KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "calculator" / "spec.yaml"
TASKS = ROOT / "examples" / "calculator" / "tasks.jsonl"
BATCH = 8
COUNTERS = {  # what a pass cost the server, from its Prometheus counters
    "requests": "vllm:request_success_total",
    "prompt": "vllm:prompt_tokens_total",
    "cached": "vllm:prefix_cache_hits_total",
    "generated": "vllm:generation_tokens_total",
}
BUSY = ("vllm:num_requests_running", "vllm:num_requests_waiting")


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


# ---- the server: its counters and its prefix cache ------------------------------------
def read_metrics(url: str) -> dict[str, float]:
    """Every sample of the server's /metrics, summed over labels, by metric name."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return values


def settled_metrics(url: str, deadline_s: float = 30.0) -> dict[str, float]:
    """The counters once no request runs or waits and two reads agree."""
    deadline = time.monotonic() + deadline_s
    last = read_metrics(url)
    while True:
        now = read_metrics(url)
        idle = all(now.get(name, 0.0) == 0.0 for name in BUSY)
        if idle and all(now.get(m) == last.get(m) for m in COUNTERS.values()):
            return now
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_vllm: the server at {url} did not go idle in {deadline_s} s")
        last = now
        time.sleep(0.2)


def reset_prefix_cache(url: str, deadline_s: float = 30.0) -> None:
    """Empty the server's prefix cache (it refuses while blocks are held: retry)."""
    deadline = time.monotonic() + deadline_s
    while True:
        request = urllib.request.Request(f"{url}/reset_prefix_cache", data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                body = answer.read().decode().strip()
        except urllib.error.HTTPError as exc:
            raise SystemExit(
                f"bench_vllm: POST {url}/reset_prefix_cache answered {exc.code}; start the "
                "server with VLLM_SERVER_DEV_MODE=1 so that it offers the endpoint"
            ) from exc
        # `{"success": bool}` on recent vLLM; older ones answer 200 with no body
        if not body or json.loads(body).get("success", True):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_vllm: the prefix cache of {url} would not reset")
        time.sleep(0.5)


@dataclass(frozen=True)
class Pass:
    """One timed pass from an empty prefix cache and what it cost the server."""

    name: str
    wall_s: float
    counters: dict[str, float]


def timed_pass(url: str, name: str, work: Callable[[], object]) -> Pass:
    reset_prefix_cache(url)
    before = settled_metrics(url)
    start = time.perf_counter()
    work()
    wall = time.perf_counter() - start
    after = settled_metrics(url)
    missing = [m for m in COUNTERS.values() if m not in after]
    if missing:
        raise SystemExit(f"bench_vllm: the server at {url} reports no {', '.join(missing)}")
    counters = {key: after.get(m, 0.0) - before.get(m, 0.0) for key, m in COUNTERS.items()}
    return Pass(name, wall, counters)


# ---- segments against plain generation ------------------------------------------------
def plain_bodies(model: str, results: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """The two baselines' requests, one per task, greedy, decoding exactly `max_tokens`."""

    def body(prompt: list[int], decode: int) -> dict[str, Any]:
        n = max(1, decode)
        return {
            "model": model,
            "prompt": prompt,
            "max_tokens": n,
            "min_tokens": n,
            "ignore_eos": True,
            "temperature": 0.0,
        }

    same, every = [], []
    for r in results:
        fed = [t for t, sampled in zip(r.completion_ids, r.chosen, strict=True) if not sampled]
        same.append(body([*r.prompt_ids, *fed], sum(r.chosen)))
        every.append(body(list(r.prompt_ids), len(r.completion_ids)))
    return {"plain, same work": same, "plain, decode all": every}


def segments_vs_plain(lm: Any, tasks: list[str], repeat: int) -> tuple[list[Pass], int, int]:
    """The best pass of each kind, and the runs' sampled and fed completion tokens."""
    from llmos_grammar.engines.vllm.server import http_json
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    machine = load(SPEC)
    server = lm.model
    with Runtime(machine, lm) as rt:  # real actions: record their results (not timed)
        first = [r[0] for r in rt.run_batch(tasks, batch=BATCH)]
    recorded = {(a.action, a.input): a.result for r in first for a in r.actions}
    replay = Runtime(machine, lm, runner=Replay(recorded))  # built before any timing
    replayed: list[Any] = []

    def segments() -> None:
        replayed[:] = [r[0] for r in replay.run_batch(tasks, batch=BATCH)]

    def plain(bodies: list[dict[str, Any]]) -> Callable[[], object]:
        def send(body: dict[str, Any]) -> None:
            http_json(f"{server.url}/v1/completions", body, timeout=600)

        def work() -> None:
            with ThreadPoolExecutor(BATCH) as pool:
                list(pool.map(send, bodies))

        return work

    best: dict[str, Pass] = {}
    with replay:
        for _ in range(repeat):  # interleaved: each kind sees the same load on the machine
            passes = [timed_pass(server.url, "segments (replayed)", segments)]
            for name, bodies in plain_bodies(server.model, replayed).items():
                passes.append(timed_pass(server.url, name, plain(bodies)))
            for p in passes:
                if p.name not in best or p.wall_s < best[p.name].wall_s:
                    best[p.name] = p
    sampled = sum(sum(r.chosen) for r in replayed)
    fed = sum(len(r.completion_ids) for r in replayed) - sampled
    return list(best.values()), sampled, fed


def print_passes(passes: list[Pass], tasks: int, repeat: int, sampled: int, fed: int) -> None:
    print(
        f"\nsegments vs plain generation, {tasks} tasks, {BATCH} in flight, every pass from an "
        f"empty prefix cache (best of {repeat})"
    )
    print(f"the runs' completions: {sampled} sampled + {fed} forced/injected tokens")
    print(f"{'':22}{'wall':>9}{'requests':>10}{'prompt tokens':>15}{'from cache':>12}", end="")
    print(f"{'computed':>10}{'generated':>11}")
    for p in passes:
        c = p.counters
        print(
            f"{p.name:22}{p.wall_s:>7.2f} s{c['requests']:>10.0f}{c['prompt']:>15.0f}"
            f"{c['cached']:>12.0f}{c['prompt'] - c['cached']:>10.0f}{c['generated']:>11.0f}"
        )
    walls = {p.name: p.wall_s for p in passes}
    seg = walls["segments (replayed)"]
    print(
        f"cost ratio segments / plain, same work: {seg / walls['plain, same work']:.2f}x "
        "(target <= 1.3x)"
    )
    print(
        f"segments / plain, decode all: {seg / walls['plain, decode all']:.2f}x "
        "(plain decodes the forced and injected text that segments prefill)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="first N tasks (0: all)")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes of each kind")
    parser.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()

    from llmos_grammar.engines.vllm import load_vllm
    from llmos_grammar.engines.vllm.args import parse_engine_args
    from llmos_grammar.ir import DEFAULT_MODEL, ModelRef

    os.environ["VLLM_SERVER_DEV_MODE"] = "1"  # the server started below offers /reset_prefix_cache
    start = time.perf_counter()
    lm = load_vllm(ModelRef(name=DEFAULT_MODEL), parse_engine_args(args.engine_arg))
    print(f"vLLM server ready in {time.perf_counter() - start:.1f} s", flush=True)
    try:
        url = ["--engine-arg", f"url={lm.model.url}"]
        reset_prefix_cache(lm.model.url)
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
        passes, sampled, fed = segments_vs_plain(lm, tasks, max(1, args.repeat))
        print_passes(passes, len(tasks), max(1, args.repeat), sampled, fed)
    finally:
        lm.model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
