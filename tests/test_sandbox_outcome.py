"""Which limit ended a sandboxed child: a CPU-limit SIGKILL (RLIMIT_CPU counts ticks, the
reports count exact runtime), our own kills, OOM kills, a program that kills itself."""

from __future__ import annotations

import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult
from llmos_grammar.sandbox.cgroup import Cgroup
from llmos_grammar.sandbox.outcome import CPU_KILL_SHARE, describe
from llmos_grammar.sandbox.plan import cpu_rlimit, make_plan
from llmos_grammar.sandbox.probe import Capabilities
from llmos_grammar.sandbox.pump import Streams

BARE = Capabilities()


def outcome(
    cpu_s: float,
    used: float,
    returncode: int = -signal.SIGKILL,
    streams: Streams | None = None,
    cgroup: Cgroup | None = None,
) -> ActionResult:
    """What describe() says of a child that used `used` seconds of exact CPU time."""
    policy = ActionPolicy(name="py", handler="python", cpu_s=cpu_s, timeout_s=60)
    usage = SimpleNamespace(ru_utime=used * 0.75, ru_stime=used * 0.25, ru_maxrss=10240)
    plan = make_plan(policy, BARE)
    return describe(policy, plan, streams or Streams(), returncode, usage, 3.0, cgroup)


def memory_group(folder: Path, oom_kills: int) -> Cgroup:
    """A cgroup (v1 files, as this kernel writes them) whose OOM killer ended `oom_kills`."""
    (folder / "memory.oom_control").write_text(
        f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kills}\n"
    )
    (folder / "memory.failcnt").write_text("0\n")
    (folder / "memory.max_usage_in_bytes").write_text(str(64 << 20))
    group = Cgroup([])
    group.paths = {"memory": (str(folder), 1)}
    return group


def test_the_rlimit_is_cpu_s_rounded_up_to_whole_seconds() -> None:
    policy = ActionPolicy(name="py", handler="python")
    limits = {
        s: cpu_rlimit(ActionPolicy(name="py", handler="python", cpu_s=s)) for s in (0.2, 1, 1.5, 5)
    }
    assert limits == {0.2: 1, 1: 1, 1.5: 2, 5: 5} and cpu_rlimit(policy) == 5


@pytest.mark.parametrize("cpu_s", [0.5, 1, 2.5])
@pytest.mark.parametrize("share", [0.79, 0.93, 1.04])
def test_a_sigkill_after_most_of_the_rlimit_is_the_cpu_limit(cpu_s: float, share: float) -> None:
    # measured under load: exact CPU 0.79-0.95 s when the kernel's tick count reached 1 s
    hard = cpu_rlimit(ActionPolicy(name="py", handler="python", cpu_s=cpu_s))
    result = outcome(cpu_s, used=share * hard)
    assert result.limit_hit == "cpu" and result.signal == signal.SIGKILL, result
    assert result.exit_code is None and not result.ok
    assert result.cpu_s == pytest.approx(max(share, 1.0) * hard)  # what the kernel counted


def test_a_program_that_kills_itself_early_is_not_the_cpu_limit() -> None:
    used = CPU_KILL_SHARE * 0.9
    result = outcome(1, used=used)
    assert result.limit_hit is None and result.signal == signal.SIGKILL, result
    assert result.cpu_s == pytest.approx(used)


def test_our_own_kills_decide_first_and_keep_the_measured_cpu() -> None:
    late = outcome(1, used=0.9, streams=Streams(timed_out=True))
    assert late.limit_hit == "timeout" and late.timed_out and late.cpu_s == pytest.approx(0.9)
    loud = outcome(1, used=0.9, streams=Streams(truncated=True, overflow=True))
    assert loud.limit_hit == "output" and loud.cpu_s == pytest.approx(0.9)


def test_an_oom_kill_is_memory_even_after_most_of_the_cpu(tmp_path: Path) -> None:
    result = outcome(1, used=0.95, cgroup=memory_group(tmp_path, oom_kills=1))
    assert result.limit_hit == "memory" and result.cpu_s == pytest.approx(0.95), result
    calm = outcome(1, used=0.95, cgroup=memory_group(tmp_path, oom_kills=0))
    assert calm.limit_hit == "cpu" and calm.cpu_s == pytest.approx(1.0), calm


def test_sigxcpu_is_the_cpu_limit_and_an_exit_is_no_limit() -> None:
    soft = outcome(2, used=1.2, returncode=-signal.SIGXCPU)
    assert soft.limit_hit == "cpu" and soft.cpu_s == pytest.approx(1.2)
    done = outcome(1, used=0.99, returncode=0)
    assert done.ok and done.limit_hit is None and done.cpu_s == pytest.approx(0.99)
