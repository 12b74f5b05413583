"""Start-up cost of a sandbox from a runtime that holds a lot of memory (a model's weights).

Usage: python benchmarks/bench_spawn.py [--hold-mb 0,2048] [--runs 30]

For each size in --hold-mb the process first allocates and touches that much
memory, then times, interleaved: `Popen(["/bin/true"])` with a `preexec_fn`
(CPython must fork: the page tables are copied), the same without it
(vfork: nothing is copied), and a cold sandboxed Python action with every
layer this machine has (`run_action`). Run it against two checkouts
(`PYTHONPATH=CHECKOUT`) to compare how they start sandboxes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from llmos_grammar.actions import run_action
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.sandbox import probe

POLICY = ActionPolicy(name="py", handler="python")
PAGE = 4096


def _hold(megabytes: int) -> bytearray:
    """`megabytes` of memory with every page written (resident, in the page tables)."""
    held = bytearray(megabytes << 20)
    held[::PAGE] = b"\x01" * len(range(0, len(held), PAGE))
    return held


def _nothing() -> None:
    pass


def _variants() -> dict[str, Callable[[], object]]:
    caps = probe()

    def cold() -> object:
        result = run_action(POLICY, "pass\n", caps=caps)
        if not result.ok:
            raise SystemExit(f"benchmark action failed: {result.status}: {result.stderr}")
        return result

    return {
        "Popen /bin/true, preexec_fn (fork)": lambda: subprocess.run(
            ["/bin/true"], check=True, preexec_fn=_nothing
        ),
        "Popen /bin/true (vfork)": lambda: subprocess.run(["/bin/true"], check=True),
        "python action cold, all layers": cold,
    }


def _measure(variants: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hold-mb", default="0,2048", help="sizes to hold, comma-separated")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    variants = _variants()
    _measure(variants, 2)  # the probe, imports and caches
    print(f"{'held MB':>8} {'variant':<36} {'p50 ms':>8} {'p90 ms':>8}")
    for size in (int(s) for s in args.hold_mb.split(",")):
        held = _hold(size)
        for name, values in _measure(variants, args.runs).items():
            p90 = statistics.quantiles(values, n=10)[-1]
            print(f"{size:>8} {name:<36} {statistics.median(values):8.2f} {p90:8.2f}")
        del held
    return 0


if __name__ == "__main__":
    sys.exit(main())
