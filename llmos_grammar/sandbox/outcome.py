"""Turn what a sandboxed child did (status, usage, streams, cgroup) into an ActionResult."""

from __future__ import annotations

import signal

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult, LimitName
from llmos_grammar.sandbox.cgroup import Cgroup
from llmos_grammar.sandbox.plan import Plan, limits_of
from llmos_grammar.sandbox.pump import Streams

_UNSHARE_SIGKILL = b"unshare: sigprocmask unblock failed: Invalid argument\n"


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
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= policy.cpu_s - 0.05):
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
        peak = float(getattr(usage, "ru_maxrss", 0)) / 1024
    limit = _which_limit(policy, streams, sig, cpu, cgroup)
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
