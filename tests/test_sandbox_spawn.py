"""Sandboxed children start through the exec helper: no preexec_fn, safe from many threads."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from llmos_grammar.actions import ActionRunner, run_action
from llmos_grammar.ir import ActionPolicy, Policy
from llmos_grammar.sandbox import probe
from llmos_grammar.sandbox.cgroup import Cgroup
from llmos_grammar.sandbox.prelude import STAGE_TMP, make_prelude
from llmos_grammar.sandbox.spawn import FAILED, NOBODY, Launch, Tools, helper_argv, tools
from tests.test_sandbox import CAPS, MODES

ROOT = Path(__file__).resolve().parent.parent
PY = ActionPolicy(name="py", handler="python", timeout_s=30, cpu_s=10)
# The same helper with util-linux's setpriv and prlimit, and with the `python -I -S` step.
TOOLSETS = {
    "util-linux": tools(),
    "python": dataclasses.replace(tools(), setpriv=None, prlimit=None),
}
LIMITS = (("cpu", 7, 7), ("nofile", 33, 33), ("core", 0, 0), ("fsize", 1 << 20, 1 << 20))
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _run(
    launch: Launch, argv: list[str], have: Tools, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        helper_argv(launch, argv, have), capture_output=True, text=True, timeout=30, **kw
    )


def _wait_until(what: str, cond: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class _NoPreexec(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("preexec_fn") is not None:
            raise AssertionError(f"preexec_fn passed to Popen({args or kwargs.get('args')})")
        super().__init__(*args, **kwargs)


def test_the_package_never_passes_preexec_fn() -> None:
    users = []
    for path in (ROOT / "llmos_grammar").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "preexec_fn":
                users.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert users == []


@pytest.mark.parametrize("mode", list(MODES))
def test_no_child_runs_code_of_the_runtime_before_exec(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "Popen", _NoPreexec)
    probe.__wrapped__()  # type: ignore[attr-defined]  # the probe's own children too
    result = run_action(PY, "print('cold')\n", caps=MODES[mode])
    assert result.ok and result.stdout == "cold\n", result
    session = ActionPolicy(name="s", handler="python", persistent=True)
    policy = Policy("p.yaml", {"py": PY, "s": session})
    with ActionRunner(policy, caps=MODES[mode]) as runner:
        runs = [runner.run("py", f"print({i})\n") for i in range(3)]  # the last two warm
        runs += [runner.run("s", "x = 41\n"), runner.run("s", "print(x + 1)\n")]
    assert [r.stdout for r in runs] == ["0\n", "1\n", "2\n", "", "42\n"], runs


@pytest.mark.sandbox
def test_actions_from_many_threads_at_once() -> None:
    threads, per_thread, budget_s = 16, 20, 300.0
    modes = [MODES["probed"], MODES["no-bwrap"]]  # with and without cgroups to join
    problems: list[str] = []
    done = [0] * threads

    def work(t: int) -> None:
        caps = modes[t % 2]
        # half the threads start each action cold, half take warm standbys (started
        # by each runner's own thread, forked by the one spawning thread)
        with ActionRunner(Policy("p.yaml", {"py": PY}), caps=caps, warm=t % 4 >= 2) as runner:
            for i in range(per_thread):
                result = runner.run("py", f"print({t} * 1000 + {i})\n")
                if not (result.ok and result.stdout == f"{t * 1000 + i}\n"):
                    problems.append(f"thread {t} action {i}: {result}")
                done[t] += 1

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    deadline = time.monotonic() + budget_s
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    assert not [w for w in workers if w.is_alive()], f"not done in {budget_s} s: {done}"
    assert problems == []
    assert done == [per_thread] * threads


@pytest.mark.parametrize("toolset", list(TOOLSETS))
def test_the_helper_runs_nothing_when_the_runtime_is_not_its_parent(toolset: str) -> None:
    launch = Launch(parent=os.getppid(), limits=LIMITS)  # pytest's parent, not pytest
    done = _run(launch, ["/bin/echo", "ran"], TOOLSETS[toolset])
    assert done.returncode == FAILED and done.stdout == "", done


@pytest.mark.parametrize("toolset", list(TOOLSETS))
def test_the_helper_sets_the_rlimits(toolset: str) -> None:
    launch = Launch(parent=os.getpid(), limits=LIMITS)
    done = _run(launch, ["/bin/cat", "/proc/self/limits"], TOOLSETS[toolset])
    assert done.returncode == 0, done
    rows = {line[:26].strip(): line[26:].split()[:2] for line in done.stdout.splitlines()}
    assert rows["Max cpu time"] == ["7", "7"]
    assert rows["Max open files"] == ["33", "33"]
    assert rows["Max core file size"] == ["0", "0"]
    assert rows["Max file size"] == [str(1 << 20)] * 2


@pytest.mark.parametrize("toolset", list(TOOLSETS))
def test_only_the_passed_fds_reach_the_program(toolset: str) -> None:
    read, write = os.pipe()
    try:
        launch = Launch(parent=os.getpid(), limits=LIMITS)
        if CAPS.capped_tmpfs:  # the prelude's unshare and mounts too
            launch = dataclasses.replace(launch, prelude=make_prelude(PY, True, True))
        argv = ["/bin/sh", "-c", "ls /proc/$$/fd"]
        done = _run(launch, argv, TOOLSETS[toolset], pass_fds=(write,))
    finally:
        os.close(read)
        os.close(write)
    assert done.returncode == 0, done
    assert sorted(done.stdout.split()) == sorted(["0", "1", "2", str(write)]), done


def test_a_failed_step_stops_the_start_with_a_clear_message() -> None:
    launch = Launch(parent=os.getpid(), join=("/nonexistent/cgroup.procs",))
    done = _run(launch, ["/bin/echo", "ran"], tools())
    assert done.returncode == FAILED and done.stdout == "", done
    expect = "llmos sandbox: cannot start the action: join the control group /nonexistent/"
    assert expect in done.stderr


@pytest.mark.skipif(CAPS.pids_cgroup is None, reason="no writable pids cgroup")
def test_the_cgroup_is_joined_before_the_program_runs() -> None:
    assert CAPS.pids_cgroup is not None
    group = Cgroup([CAPS.pids_cgroup])
    try:
        launch = Launch(parent=os.getpid(), join=tuple(group.procs_files()), limits=LIMITS)
        done = _run(launch, ["/bin/cat", "/proc/self/cgroup"], tools())
    finally:
        group.remove()
    name = os.path.basename(os.path.dirname(group.procs_files()[0]))
    assert done.returncode == 0 and name in done.stdout, done


@ROOT_ONLY
@pytest.mark.skipif(not CAPS.capped_tmpfs, reason="no capped tmpfs here")
def test_the_prelude_is_set_up_in_the_child_only() -> None:
    prelude = make_prelude(dataclasses.replace(PY, memory_mb=64, disk_mb=4), True, True)
    script = f"cat /proc/sys/kernel/shmmax; grep ' {STAGE_TMP} ' /proc/self/mounts"
    done = _run(Launch(parent=os.getpid(), prelude=prelude), ["/bin/sh", "-c", script], tools())
    assert done.returncode == 0, done
    shmmax, mount = done.stdout.splitlines()
    assert shmmax == str(64 << 20)
    assert "nr_inodes=1024" in mount and "nosuid" in mount and "nodev" in mount
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        assert f" {STAGE_TMP} " not in fh.read()


# A runtime that starts `sleep` through the helper, says its pid and uid once it runs,
# then dies (os._exit: no cleanup of any kind).
RUNTIME = """import json, os, subprocess, sys, time
from llmos_grammar.sandbox.spawn import Launch, Tools, helper_argv
have = Tools(**json.loads(sys.argv[1]))
launch = Launch(parent=os.getpid(), drop=sys.argv[2] == "drop", limits=(("cpu", 30, 30),))
proc = subprocess.Popen(helper_argv(launch, ["/bin/sleep", "60"], have),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
        if fh.read() == b"/bin/sleep\\x0060\\x00":
            break
    time.sleep(0.01)
with open(f"/proc/{proc.pid}/status") as fh:
    uid = next(line.split()[1] for line in fh if line.startswith("Uid:"))
print(proc.pid, uid, flush=True)
os._exit(0)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("toolset", list(TOOLSETS))
@pytest.mark.parametrize("drop", ["keep", pytest.param("drop", marks=ROOT_ONLY)])
def test_the_program_dies_with_the_runtime_after_any_uid_drop(toolset: str, drop: str) -> None:
    have = dataclasses.asdict(TOOLSETS[toolset])
    argv = [sys.executable, "-c", RUNTIME, json.dumps(have), drop]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    pid, uid = (int(v) for v in out.stdout.split())
    try:
        assert uid == (NOBODY if drop == "drop" else os.geteuid())
        _wait_until(f"the sandbox ({pid}) to die with its runtime", lambda: _gone(pid), 10)
    finally:
        if not _gone(pid):
            os.kill(pid, 9)


def test_helper_argv_arms_the_signal_then_checks_the_parent() -> None:
    have = Tools(setpriv="SETPRIV", prlimit="PRLIMIT", unshare="UNSHARE", mount="MOUNT")
    prelude = make_prelude(PY, True, False)
    kept = helper_argv(Launch(parent=7, prelude=prelude, limits=LIMITS), ["PROG"], have)
    assert kept[:4] == ["SETPRIV", "--pdeathsig", "KILL", "--"]
    assert kept[4:7] == ["UNSHARE", "--ipc", "--"]
    steps = kept[kept.index("llmos-spawn") + 1 :]
    assert steps[:2] == ["parent", "7"] and "sysctl" in steps
    assert kept[kept.index("PRLIMIT") :][-2:] == ["--", "PROG"]
    dropped = helper_argv(Launch(parent=7, prelude=prelude, drop=True), ["PROG"], have)
    arm = dropped.index("SETPRIV")
    assert dropped.index("sysctl") < arm  # as root, before the drop
    drop = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--pdeathsig", "KILL"]
    assert dropped[arm + 1 : arm + 7] == [*drop, "--"]
    assert dropped[-4:] == ["parent", "7", "--", "PROG"]  # checked after the re-arming
    fallback = dataclasses.replace(have, setpriv=None)
    finish = helper_argv(Launch(parent=7, drop=True), ["PROG"], fallback)
    assert finish[:4] == [sys.executable, "-I", "-S", "-c"] and finish[-1] == "PROG"
