"""`llmos sandbox doctor`: which isolation layers work on this machine, tried not assumed."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from llmos_grammar.sandbox.probe import Capabilities

LAYERS = {
    "timeout": "wall timeout, kills the whole process tree",
    "cpu": "RLIMIT_CPU seconds",
    "memory": "RLIMIT_AS (+ memory cgroup when available)",
    "file_size": "RLIMIT_FSIZE per file",
    "open_files": "RLIMIT_NOFILE",
    "output": "stdout/stderr read incrementally, capped, child stopped past the cap",
    "env": "environment scrubbed to an allow-list",
    "workdir": "a fresh working directory per action",
    "processes": "pids cgroup or RLIMIT_NPROC under an unprivileged uid",
    "kill_tree": "pids cgroup kill or PID namespace: daemons do not outlive the action",
    "pid_namespace": "bubblewrap --unshare-pid (or util-linux unshare without bwrap)",
    "network": "a network namespace when `network: false` (bwrap or unshare)",
    "filesystem": "bubblewrap read-only root, homes and /tmp hidden, allowed paths bound",
    "minimal_etc": "bubblewrap: /etc holds only root and nobody, no host accounts or configs",
    "uid": "code runs as uid 65534 with no capabilities",
    "disk": "the temporary working directory is a tmpfs of `disk_mb`",
    "ipc": "an IPC namespace: System V objects and POSIX queues end with the sandbox",
    "ipc_limits": "System V shared memory, semaphores, queues each within `memory_mb` (root)",
    "dev_shm": "/dev/shm is the sandbox's own tmpfs of `memory_mb` (bubblewrap)",
    "inodes": "/tmp and /dev/shm cap inodes, one per 4 KiB of their size (root, bubblewrap)",
    "minimal_sys": "bubblewrap: /sys holds CPU and NUMA topology only (no NICs, MACs, DMI ids)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Subcommands of `llmos sandbox`."""
    sub = parser.add_subparsers(dest="sandbox_command", metavar="COMMAND", required=True)
    doctor = sub.add_parser("doctor", help="print which sandbox layers work here")
    doctor.add_argument("--json", action="store_true", help="print JSON instead of a table")
    doctor.add_argument("--runs", type=int, default=10, help="trivial actions timed (0 = skip)")


@dataclass(frozen=True)
class Layer:
    """An isolation layer: whether it works here, and what provides it."""

    works: bool
    how: str


@dataclass(frozen=True)
class Timing:
    """Median start-to-end time of a trivial action, sandboxed and as a bare subprocess."""

    ok: bool
    sandboxed_p50_ms: float
    bare_subprocess_p50_ms: float


@dataclass(frozen=True)
class Doctor:
    """What `llmos sandbox doctor` found (its --json document is this, field by field)."""

    layers: dict[str, Layer]
    bwrap: str | None
    setpriv: str | None
    unshare: str | None
    cgroups: dict[str, str | None]
    landlock_available_unused: bool
    notes: tuple[str, ...]
    trivial_action: Timing | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        if self.trivial_action is None:
            del data["trivial_action"]
        return data


def report(caps: Capabilities, runs: int) -> Doctor:
    """Layers (enforced or not, with what provides them), notes, and a start-up timing."""
    from llmos_grammar.actions import run_action
    from llmos_grammar.ir import ActionPolicy
    from llmos_grammar.sandbox.plan import make_plan

    policy = ActionPolicy(name="doctor", handler="python")
    plan = make_plan(policy, caps)
    timing = None
    if runs > 0:
        sandboxed, bare = [], []
        ok = True
        for _ in range(runs):
            start = time.perf_counter()
            ok = run_action(policy, "pass\n", caps=caps).ok
            sandboxed.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=False)
            bare.append(time.perf_counter() - start)
        timing = Timing(
            ok,
            round(statistics.median(sandboxed) * 1000, 2),
            round(statistics.median(bare) * 1000, 2),
        )
    return Doctor(
        layers={name: Layer(name in plan.enforced, how) for name, how in LAYERS.items()},
        bwrap=caps.bwrap,
        setpriv=caps.setpriv,
        unshare=caps.unshare,
        cgroups={
            name: (f"v{base.version} {base.path}" if base else None)
            for name, base in (
                ("pids", caps.pids_cgroup),
                ("memory", caps.memory_cgroup),
                ("cpu", caps.cpu_cgroup),
            )
        },
        landlock_available_unused=caps.landlock,
        notes=caps.notes,
        trivial_action=timing,
    )


def _print_text(doctor: Doctor) -> None:
    print("llmos sandbox doctor\n")
    for name, layer in doctor.layers.items():
        mark = "yes" if layer.works else "NO "
        print(f"  {mark}  {name:<14} {layer.how}")
    print()
    for tool, path in (
        ("bwrap", doctor.bwrap),
        ("setpriv", doctor.setpriv),
        ("unshare", doctor.unshare),
    ):
        print(f"  {tool}: {path or 'unavailable'}")
    for name, where in doctor.cgroups.items():
        print(f"  cgroup {name}: {where or 'unavailable'}")
    for note in doctor.notes:
        print(f"  note: {note}")
    timing = doctor.trivial_action
    if timing:
        verdict = "ok" if timing.ok else "FAILED"
        print(f"\n  trivial python action ({verdict}): {timing.sandboxed_p50_ms} ms p50 sandboxed,")
        print(f"  {timing.bare_subprocess_p50_ms} ms p50 bare subprocess")


def run(args: argparse.Namespace) -> int:
    """Print the doctor's report; exit 0 when a trivial action runs, 1 otherwise."""
    from llmos_grammar.sandbox import probe

    doctor = report(probe(), args.runs)
    if args.json:
        print(json.dumps(doctor.to_json(), indent=2))
    else:
        _print_text(doctor)
    timing = doctor.trivial_action
    return 0 if timing is None or timing.ok else 1
