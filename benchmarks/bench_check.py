"""How long `llmos-check` takes on every shipped example, once Python has started.

Prints the time of the first check in a fresh process (imports of lark and
llguidance, schema and grammar compilation included) and of repeated checks,
and whether torch was imported (it must not be).

    .venv/bin/python benchmarks/bench_check.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    started = time.perf_counter()
    from llmos_grammar.spec.check import check_paths

    targets = [str(ROOT / "examples"), str(ROOT / "policies")]
    report, checked = check_paths(targets)
    first = time.perf_counter() - started
    repeats = []
    for _ in range(5):
        t0 = time.perf_counter()
        check_paths(targets)
        repeats.append(time.perf_counter() - t0)
    print(f"files checked:            {len(checked)}")
    print(f"errors / warnings:        {len(report.errors)} / {len(report.warnings)}")
    print(f"first check (cold):       {first * 1000:.0f} ms")
    print(f"repeat check (median):    {statistics.median(repeats) * 1000:.0f} ms")
    print(f"torch imported:           {'torch' in sys.modules}")
    print(f"cold / 1 s budget:        {first:.2f}")
    return 1 if report.errors or "torch" in sys.modules else 0


if __name__ == "__main__":
    sys.exit(main())
