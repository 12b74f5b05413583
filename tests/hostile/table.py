"""Run the hostile corpus under every sandbox mode this machine has and print case x outcome.

Usage: python -m tests.hostile.table
"""

from __future__ import annotations

import os
import sys
import time

from llmos_grammar.sandbox.probe import Capabilities, probe, without_bwrap
from tests.hostile.cases import SECRET, WARM_HANDLERS, Case, Context, Probe
from tests.hostile.corpus import CASES, PROBES


def modes() -> dict[str, tuple[Capabilities, bool]]:
    """Mode name -> (capabilities, warm): every layer found, cold and warm; and without bwrap."""
    caps = probe()
    found = {"all layers": (caps, False), "warm standby": (caps, True)}
    if caps.bwrap:
        found["no bwrap"] = (without_bwrap(caps), False)
    return found


def outcome(case: Case, caps: Capabilities, warm: bool = False) -> tuple[str, str]:
    """(verdict, detail): verdict is "held", "FAILED" or "skipped"."""
    ctx = Context.create()
    try:
        policy = case.policy(ctx)
        missing = case.missing_layer(policy, caps)
        if missing is not None:
            return "skipped", missing
        start = time.monotonic()
        result = case.run(ctx, caps, warm)
        took = time.monotonic() - start
        problem = case.check(result, ctx)
        detail = f"{result.status} in {took:.2f}s"
        return ("FAILED", f"{problem} ({detail})") if problem else ("held", detail)
    finally:
        ctx.close()


def main() -> int:
    os.environ["LLMOS_HOSTILE_SECRET"] = SECRET
    failures = 0
    rows: dict[str, list[str]] = {case.name: [] for case in CASES}
    names = list(modes())
    for caps, warm in modes().values():
        for case in CASES:
            if warm and case.handler not in WARM_HANDLERS:
                rows[case.name].append("(same as cold)")
                continue
            verdict, detail = outcome(case, caps, warm)
            failures += verdict == "FAILED"
            rows[case.name].append(f"{verdict}: {detail}" if verdict != "held" else detail)
    width = 34
    print(f"{'case':<20} " + " ".join(f"{n:<{width}}" for n in names))
    for name, cells in rows.items():
        print(f"{name:<20} " + " ".join(f"{c[:width]:<{width}}" for c in cells))
    print("\ncells: the result the model saw (all held unless marked FAILED/skipped)")
    failures += _probes()
    _expected()
    return 1 if failures else 0


def probe_outcome(probe: Probe) -> tuple[str, str]:
    """(verdict, detail) of one probe: "held" or "FAILED"."""
    problem = probe.run()
    return ("FAILED", problem) if problem else ("held", probe.expect)


def _probes() -> int:
    """Print the probes (attacks that are not one sandboxed action); how many failed."""
    if not PROBES:
        return 0
    failures = 0
    print(f"\n{'probe':<28} outcome")
    for attack in PROBES:
        verdict, detail = probe_outcome(attack)
        failures += verdict == "FAILED"
        print(f"{attack.name:<28} {verdict}: {detail}")
    return failures


def _expected() -> None:
    print(f"\n{'case':<28} expected")
    for case in CASES:
        print(f"{case.name:<28} {case.expect}")


if __name__ == "__main__":
    sys.exit(main())
