"""Action overhead: a trivial Python action through the sandbox vs a bare subprocess, side by side.

Usage: python benchmarks/bench_actions.py [--runs 40] [--gap-ms 50]
On a shared, loaded machine, `chrt -f 10 python benchmarks/bench_actions.py`
takes scheduling contention out of every variant alike.

Each round times every variant once, in turn, so machine noise hits all alike.
Variants: the bare `subprocess.run([sys.executable, "-c", "pass"])`; a cold
sandboxed action with every layer this machine has (the default `site: minimal`
start, and `site: full`, the interpreter exactly as `python -I`); without bwrap;
a warm standby action (ActionRunner, the next sandbox started while the model
would be decoding, simulated by `--gap-ms` of idle time); a persistent session.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from llmos_grammar.actions import ActionRunner, run_action
from llmos_grammar.ir import ActionPolicy, Policy
from llmos_grammar.sandbox import probe, without_bwrap
from llmos_grammar.sandbox.plan import make_plan

POLICY = ActionPolicy(name="py", handler="python")
FULL_SITE = ActionPolicy(name="py", handler="python", options={"site": "full"})
SESSION = ActionPolicy(name="session", handler="python", persistent=True)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--gap-ms", type=float, default=50.0, help="idle time before warm actions")
    args = parser.parse_args()
    caps = probe()
    degraded = without_bwrap(caps)
    runner = ActionRunner(Policy("bench", {"py": POLICY, "session": SESSION}), caps=caps)
    for _ in range(2):  # first use starts the standby / the session
        runner.run("py", "pass\n")
        runner.run("session", "pass\n")
    variants: dict[str, Callable[[], object]] = {
        "bare subprocess.run": lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
        "bare -I -S": lambda: subprocess.run(
            [sys.executable, "-I", "-S", "-c", "pass"], check=True
        ),
        "sandbox cold, all layers": lambda: run_action(POLICY, "pass\n", caps=caps),
        "cold, all, site: full": lambda: run_action(FULL_SITE, "pass\n", caps=caps),
        "sandbox cold, no bwrap": lambda: run_action(POLICY, "pass\n", caps=degraded),
        "sandbox warm standby": lambda: runner.run("py", "pass\n"),
        "persistent session": lambda: runner.run("session", "pass\n"),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, fn in variants.items():
            if name in ("sandbox warm standby", "persistent session"):
                time.sleep(args.gap_ms / 1000)
            times[name].append(_timed(fn))
    runner.close()
    base = statistics.median(times["bare subprocess.run"])
    print(f"layers (all): {', '.join(make_plan(POLICY, caps).enforced)}")
    print(f"not enforced (all): {', '.join(make_plan(POLICY, caps).unenforced) or 'none'}")
    print(f"not enforced (no bwrap): {', '.join(make_plan(POLICY, degraded).unenforced) or 'none'}")
    print(f"\n{'variant':<28} {'p50 ms':>8} {'p90 ms':>8} {'x bare':>7}")
    for name, values in times.items():
        p50 = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<28} {p50:8.2f} {p90:8.2f} {p50 / base:7.2f}")
    warm = statistics.median(times["sandbox warm standby"])
    cold = statistics.median(times["sandbox cold, all layers"])
    print(f"\ncold all layers / bare = {cold / base:.2f} (target <= 1.2)")
    print(f"warm standby p50 = {warm:.2f} ms (target <= 10 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
