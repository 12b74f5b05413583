"""Action overhead per handler: each sandboxed variant beside its baseline, in one run.

Usage: python benchmarks/bench_actions.py [--runs 40] [--gap-ms 50]
                                         [--handlers python,sqlite,files,http]
On a shared, loaded machine, `chrt -f 10 python benchmarks/bench_actions.py`
takes scheduling contention out of every variant alike.

Each round times every variant once, in turn, so machine noise hits all alike.
python: the bare `subprocess.run([sys.executable, "-c", "pass"])`; a cold
sandboxed action with every layer this machine has (the default `site: minimal`
start, and `site: full`, the interpreter exactly as `python -I`); without bwrap;
a warm standby action (ActionRunner, the next sandbox started while the model
would be decoding, simulated by `--gap-ms` of idle time); a persistent session.
sqlite, files, http: the handler's function called in the runtime process (how
they ran before the worker: the baseline), then the sandboxed worker cold, cold
without bwrap, and warm (a standby worker, after the same idle gap).

Beside the wall times, "cpu ms" is the CPU time the sandboxed child itself used
(what the sandbox measured: wait4 and the cgroup): on a loaded machine the wall
clock mostly measures waiting for a core, the child's CPU time what a start
costs (imports, for the worker).
"""

from __future__ import annotations

import argparse
import http.server
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from llmos_grammar.actions import ActionRunner, run_action
from llmos_grammar.actions.files import run_files
from llmos_grammar.actions.http import run_http
from llmos_grammar.actions.sqlite import run_sqlite
from llmos_grammar.ir import ActionPolicy, Policy
from llmos_grammar.results import ActionResult
from llmos_grammar.sandbox import Capabilities, probe, without_bwrap
from llmos_grammar.sandbox.plan import make_plan

POLICY = ActionPolicy(name="py", handler="python")
FULL_SITE = ActionPolicy(name="py", handler="python", site="full")
SESSION = ActionPolicy(name="session", handler="python", persistent=True)
WARM = ("warm standby", "persistent session", "worker warm")
InProcess = Callable[[str, ActionPolicy], ActionResult]
Variants = dict[str, Callable[[], object]]


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


def _fixtures(folder: str) -> dict[str, tuple[ActionPolicy, str, InProcess]]:
    """handler -> (policy, a small action, the in-process function) for sqlite, files, http."""
    os.chmod(folder, 0o755)  # the worker runs as uid 65534
    database = os.path.join(folder, "shop.db")
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE items (id INTEGER, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(100)])
    with open(os.path.join(folder, "note.txt"), "w") as fh:
        fh.write("hello\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return {
        "sqlite": (
            ActionPolicy(name="sqlite", handler="sqlite", database=database),
            "SELECT name FROM items WHERE id < 5;",
            run_sqlite,
        ),
        "files": (
            ActionPolicy(name="files", handler="files", read=(folder,)),
            "read note.txt",
            run_files,
        ),
        "http": (
            ActionPolicy(name="http", handler="http", network=True, urls=(url + "/",)),
            f"GET {url}/hi",
            run_http,
        ),
    }


def _python_variants(caps: Capabilities, runner: ActionRunner) -> Variants:
    degraded = without_bwrap(caps)
    return {
        "bare subprocess.run": lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
        "bare -I -S": lambda: subprocess.run(
            [sys.executable, "-I", "-S", "-c", "pass"], check=True
        ),
        "python cold, all layers": lambda: run_action(POLICY, "pass\n", caps=caps),
        "python cold, site: full": lambda: run_action(FULL_SITE, "pass\n", caps=caps),
        "python cold, no bwrap": lambda: run_action(POLICY, "pass\n", caps=degraded),
        "python warm standby": lambda: runner.run("py", "pass\n"),
        "python persistent session": lambda: runner.run("session", "pass\n"),
    }


def _checked(fn: Callable[[], ActionResult]) -> Callable[[], object]:
    def run() -> object:
        result = fn()
        if not result.ok:
            raise SystemExit(f"benchmark action failed: {result.status}: {result.stderr}")
        return result

    return run


def _worker_variants(
    name: str,
    fixture: tuple[ActionPolicy, str, InProcess],
    caps: Capabilities,
    runner: ActionRunner,
) -> Variants:
    policy, text, function = fixture
    degraded = without_bwrap(caps)
    return {
        f"{name} in-process (before)": _checked(lambda: function(text, policy)),
        f"{name} worker cold": _checked(lambda: run_action(policy, text, caps=caps)),
        f"{name} worker cold, no bwrap": _checked(lambda: run_action(policy, text, caps=degraded)),
        f"{name} worker warm": _checked(lambda: runner.run(name, text)),
    }


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--gap-ms", type=float, default=50.0, help="idle time before warm actions")
    parser.add_argument("--handlers", default="python,sqlite,files,http")
    args = parser.parse_args()
    handlers = args.handlers.split(",")
    caps = probe()
    with tempfile.TemporaryDirectory(prefix="llmos-bench-") as folder:
        fixtures = {k: v for k, v in _fixtures(folder).items() if k in handlers}
        actions = {"py": POLICY, "session": SESSION} | {k: v[0] for k, v in fixtures.items()}
        runner = ActionRunner(Policy("bench", actions), caps=caps)
        variants: Variants = _python_variants(caps, runner) if "python" in handlers else {}
        for name, fixture in fixtures.items():
            variants |= _worker_variants(name, fixture, caps, runner)
        for _ in range(2):  # first use starts the standbys and the session
            for name in actions:
                runner.run(name, "pass\n" if name in ("py", "session") else fixtures[name][1])
        times, cpu = _measure(variants, args.runs, args.gap_ms)
        runner.close()
    _report(times, cpu, caps)
    return 0


Times = dict[str, list[float]]


def _measure(variants: Variants, runs: int, gap_ms: float) -> tuple[Times, Times]:
    """Wall milliseconds per variant, and the child's CPU milliseconds where it reports one."""
    times: Times = {name: [] for name in variants}
    cpu: Times = {name: [] for name in variants}
    for _ in range(runs):
        for name, fn in variants.items():
            if name.endswith(WARM):
                time.sleep(gap_ms / 1000)
            wall, result = _timed(fn)
            times[name].append(wall)
            if isinstance(result, ActionResult) and result.cpu_s > 0:
                cpu[name].append(result.cpu_s * 1000)
    return times, cpu


def _report(times: Times, cpu: Times, caps: Capabilities) -> None:
    plan = make_plan(POLICY, caps)
    print(f"layers (all): {', '.join(plan.enforced)}")
    print(f"not enforced (all): {', '.join(plan.unenforced) or 'none'}")
    degraded = make_plan(POLICY, without_bwrap(caps)).unenforced
    print(f"not enforced (no bwrap): {', '.join(degraded) or 'none'}")
    print(f"\n{'variant':<30} {'p50 ms':>8} {'p90 ms':>8} {'cpu ms':>8}")
    for name, values in times.items():
        p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
        used = f"{statistics.median(cpu[name]):8.1f}" if cpu[name] else f"{'-':>8}"
        print(f"{name:<30} {statistics.median(values):8.2f} {p90:8.2f} {used}")
    if "bare subprocess.run" in times:
        base = statistics.median(times["bare subprocess.run"])
        cold = statistics.median(times["python cold, all layers"])
        warm = statistics.median(times["python warm standby"])
        print(f"\npython cold all layers / bare = {cold / base:.2f} (target <= 1.2)")
        print(f"python warm standby p50 = {warm:.2f} ms (target <= 10 ms)")


if __name__ == "__main__":
    sys.exit(main())
