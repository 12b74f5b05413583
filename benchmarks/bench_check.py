"""How long `llmos-check` takes on every shipped example and policy: cold, warm disk, repeated.

Each first check runs in a fresh Python process and is timed from inside it,
once the interpreter has started (imports of lark and llguidance, schema and
grammar compilation included); the process's whole wall time is printed beside.

- cold: $LLMOS_CACHE is a new, empty folder, so every Outlines verdict is computed;
- warm disk: a second fresh process on the folder the cold one filled;
- repeated: the median of further checks in that second process.

Your own cache folder is neither read nor written. What no user-level program
can empty stays warm: Python's bytecode caches, the tokenizer files in the
Hugging Face cache, and the OS page cache.

    .venv/bin/python benchmarks/bench_check.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = [str(ROOT / "examples"), str(ROOT / "policies")]


@dataclass(frozen=True)
class Timing:
    """One fresh process: its first check, its repeated checks and its whole wall time."""

    files: int
    errors: int
    warnings: int
    first_s: float
    repeats_s: tuple[float, ...]
    torch: bool
    process_s: float


def child(repeat: int) -> int:
    """Check every target once from a fresh start, then `repeat` more times; print JSON."""
    started = time.perf_counter()
    from llmos_grammar.spec.check import check_paths

    report, checked = check_paths(TARGETS)
    first = time.perf_counter() - started
    repeats = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        check_paths(TARGETS)
        repeats.append(time.perf_counter() - t0)
    doc = {
        "files": len(checked),
        "errors": len(report.errors),
        "warnings": len(report.warnings),
        "first_s": first,
        "repeats_s": repeats,
        "torch": "torch" in sys.modules,
    }
    print(json.dumps(doc))
    return 0


def fresh_process(cache: Path, repeat: int) -> Timing:
    """Run `child` in a new interpreter with $LLMOS_CACHE set to `cache`."""
    env = {**os.environ, "LLMOS_CACHE": str(cache)}
    command = [sys.executable, __file__, "--child", "--repeat", str(repeat)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench_check: the checking process failed:\n{done.stderr[-2000:]}")
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    return Timing(
        files=doc["files"],
        errors=doc["errors"],
        warnings=doc["warnings"],
        first_s=doc["first_s"],
        repeats_s=tuple(doc["repeats_s"]),
        torch=doc["torch"],
        process_s=process_s,
    )


def cache_files(cache: Path) -> int:
    return sum(1 for p in cache.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repeated checks (warm process)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.repeat)

    with tempfile.TemporaryDirectory(prefix="llmos-check-cache-") as folder:
        cache = Path(folder)
        cold = fresh_process(cache, 0)
        filled = cache_files(cache)
        warm = fresh_process(cache, args.repeat)
    rows = [
        ("files checked", f"{warm.files}"),
        ("errors / warnings", f"{warm.errors} / {warm.warnings}"),
        (
            "first check, cold (empty cache)",
            f"{cold.first_s * 1000:.0f} ms (process {cold.process_s * 1000:.0f} ms; "
            f"it wrote {filled} cache files)",
        ),
        (
            "first check, warm disk cache",
            f"{warm.first_s * 1000:.0f} ms (process {warm.process_s * 1000:.0f} ms)",
        ),
    ]
    if warm.repeats_s:
        median = statistics.median(warm.repeats_s)
        rows.append(
            (f"repeated check (median of {len(warm.repeats_s)})", f"{median * 1000:.0f} ms")
        )
    torch = cold.torch or warm.torch
    rows += [("torch imported", f"{torch}"), ("cold / 1 s budget", f"{cold.first_s:.2f}")]
    for label, value in rows:
        print(f"{label + ':':34}{value}")
    return 1 if cold.errors or warm.errors or torch else 0


if __name__ == "__main__":
    sys.exit(main())
