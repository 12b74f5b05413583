"""Turn what a sandboxed child did (status, usage, streams, cgroup) into an ActionResult.

A CPU-limit kill is told from what happened, not from comparing two clocks:
RLIMIT_CPU (soft = hard, whole seconds: `plan.cpu_rlimit`) ends a process with
SIGKILL when its CPU time *counted in scheduler ticks* reaches the limit, while
wait4 and the cgroup report the scheduler's exact runtime. On a loaded machine
the two part by a fifth and more, either way (measured on 2 busy cores: exact
0.79-0.95 s when the tick count reached 1 s). So a SIGKILL that none of our
layers sent (no wall clock, no output cap, no OOM kill in the cgroup) after at
least `CPU_KILL_SHARE` of the rlimit is the CPU limit, and the result says it
used at least the rlimit: that is what the kernel counted when it ended it.
"""

from __future__ import annotations

import resource
import signal

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult, LimitName
from llmos_grammar.sandbox.cgroup import Cgroup
from llmos_grammar.sandbox.plan import Plan, cpu_rlimit, limits_of
from llmos_grammar.sandbox.pump import Streams

_UNSHARE_SIGKILL = b"unshare: sigprocmask unblock failed: Invalid argument\n"
# A SIGKILL we did not send, after this share of RLIMIT_CPU, is the CPU limit (see above);
# a program that kills itself sooner is not reported as one.
CPU_KILL_SHARE = 0.5


def _exit_and_signal(
    returncode: int, plan: Plan, streams: Streams
) -> tuple[int | None, int | None]:
    if plan.unshare and returncode == 1 and streams.err.endswith(_UNSHARE_SIGKILL):
        # unshare cannot re-raise SIGKILL on itself; it says so and exits 1
        del streams.err[-len(_UNSHARE_SIGKILL) :]
        return None, signal.SIGKILL
    if returncode < 0:
        return None, -returncode
    if plan.bwrap and 128 < returncode <= 128 + 64:  # bwrap reports a signal as 128 + n
        return None, returncode - 128
    return returncode, None


def _cpu_killed(policy: ActionPolicy, sig: int | None, cpu: float, cgroup: Cgroup | None) -> bool:
    """Whether RLIMIT_CPU ended the child (called once our own kills are ruled out)."""
    if sig == signal.SIGXCPU:
        return True
    if sig != signal.SIGKILL or (cgroup is not None and cgroup.oom_kills() > 0):
        return False
    return cpu >= CPU_KILL_SHARE * cpu_rlimit(policy)


def _which_limit(
    policy: ActionPolicy,
    streams: Streams,
    sig: int | None,
    cpu: float,
    cgroup: Cgroup | None,
) -> LimitName | None:
    err = bytes(streams.err[-4096:])
    if streams.timed_out:
        return "timeout"
    if streams.overflow:
        return "output"
    if _cpu_killed(policy, sig, cpu, cgroup):
        return "cpu"
    if (cgroup is not None and cgroup.memory_failed()) or b"MemoryError" in err:
        return "memory"
    if sig == signal.SIGXFSZ or b"File too large" in err:
        return "file_size"
    if b"No space left on device" in err:
        return "disk"
    if (cgroup is not None and cgroup.pids_failed()) or b"Resource temporarily unavailable" in err:
        return "processes"
    if b"Too many open files" in err:
        return "open_files"
    return None


def _rss_peak_mb(usage: object) -> float:
    """The child's peak resident memory from wait4, or 0.0 where it cannot be told.

    At its first exec the kernel records the high-water mark of the memory the child
    came from: the runtime's own (a vfork shares it, a fork copies it). A child that
    used less than the runtime ever held therefore reports the runtime's peak, not its
    own; only a figure above the runtime's own peak is the child's. Without a memory
    cgroup the rest is unknown, and reported as 0.0 rather than a wrong number.
    """
    child = int(getattr(usage, "ru_maxrss", 0))
    runtime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return child / 1024 if child > runtime else 0.0


def describe(
    policy: ActionPolicy,
    plan: Plan,
    streams: Streams,
    returncode: int,
    usage: object,
    duration: float,
    cgroup: Cgroup | None,
) -> ActionResult:
    """The result the model and the trace see, with the limit that stopped the child."""
    exit_code, sig = _exit_and_signal(returncode, plan, streams)
    cpu = float(getattr(usage, "ru_utime", 0.0)) + float(getattr(usage, "ru_stime", 0.0))
    group_cpu = cgroup.cpu_seconds() if cgroup is not None else None
    cpu = max(cpu, group_cpu or 0.0)
    peak = cgroup.peak_memory_mb() if cgroup is not None else None
    if peak is None:
        peak = _rss_peak_mb(usage)
    limit = _which_limit(policy, streams, sig, cpu, cgroup)
    if limit == "cpu" and sig == signal.SIGKILL:
        cpu = max(cpu, float(cpu_rlimit(policy)))  # what the kernel counted (see above)
    return ActionResult(
        stdout=bytes(streams.out).decode("utf-8", errors="replace"),
        stderr=bytes(streams.err).decode("utf-8", errors="replace"),
        exit_code=None if streams.timed_out else exit_code,
        signal=sig,
        timed_out=streams.timed_out,
        limit_hit=limit,
        truncated=streams.truncated,
        duration_s=round(duration, 6),
        cpu_s=round(cpu, 6),
        peak_memory_mb=round(peak, 3),
        unenforced=plan.unenforced,
        limits=limits_of(policy, plan),
    )
