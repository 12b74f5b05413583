"""Run the hostile corpus under every sandbox mode this machine has and print case x outcome.

Usage: python -m tests.hostile.table
"""

from __future__ import annotations

import os
import sys
import time

from llmos_grammar.sandbox.probe import Capabilities, probe, without_bwrap
from tests.hostile.cases import CASES, SECRET, Case, Context


def modes() -> dict[str, Capabilities]:
    """ "all layers" (what probe finds) and, when bwrap works, "no bwrap" (the degraded path)."""
    caps = probe()
    found = {"all layers": caps}
    if caps.bwrap:
        found["no bwrap"] = without_bwrap(caps)
    return found


def outcome(case: Case, caps: Capabilities) -> tuple[str, str]:
    """(verdict, detail): verdict is "held", "FAILED" or "skipped"."""
    ctx = Context.create()
    try:
        policy = case.policy(ctx)
        missing = case.missing_layer(policy, caps)
        if missing is not None:
            return "skipped", missing
        start = time.monotonic()
        result = case.run(ctx, caps)
        took = time.monotonic() - start
        problem = case.check(result, ctx)
        detail = f"{result.status} in {took:.2f}s"
        return ("FAILED", f"{problem} ({detail})") if problem else ("held", detail)
    finally:
        ctx.close()


def main() -> int:
    os.environ["LLMOS_HOSTILE_SECRET"] = SECRET
    failures = 0
    for mode, caps in modes().items():
        print(f"\n== {mode} ==")
        print(f"{'case':<20} {'verdict':<8} detail")
        for case in CASES:
            verdict, detail = outcome(case, caps)
            failures += verdict == "FAILED"
            print(f"{case.name:<20} {verdict:<8} {detail}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
