"""A sandbox dies with the process that started it, in every mode, and not with a thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos_grammar.actions import ActionRunner
from llmos_grammar.ir import ActionPolicy, Policy
from llmos_grammar.sandbox.plan import make_plan
from tests.test_sandbox import MODES

# The action: a child in its process group, a setsid double-forked daemon, then sleep.
PROGRAM = """import os, subprocess, time
subprocess.Popen(["sleep", "300"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", "301"])
    os._exit(0)
time.sleep(300)
"""
# Runs the action under capabilities made the way tests/test_sandbox.py makes MODES,
# from a worker thread (the runtime may run actions from threads), until killed.
DRIVER = """import sys, threading
from llmos_grammar.actions import run_action
from llmos_grammar.spec import load_policy
from tests.test_sandbox import MODES
policy = load_policy(sys.argv[2]).actions["python"]
code = open(sys.argv[3]).read()
caps = MODES[sys.argv[1]]
worker = threading.Thread(target=run_action, args=(policy, code), kwargs={"caps": caps})
worker.start()
worker.join()
"""
# A runtime that only keeps a warm standby sandbox ready, until killed.
STANDBY = """import sys, time
from llmos_grammar.actions import ActionRunner
from llmos_grammar.spec import load_policy
from tests.test_sandbox import MODES
runner = ActionRunner(load_policy(sys.argv[2]), caps=MODES[sys.argv[1]])
time.sleep(300)
"""
ROOT = Path(__file__).resolve().parent.parent


def marked(mark: str) -> dict[int, bytes]:
    """Processes whose environment holds `mark` (pid -> argv)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if mark.encode() not in fh.read():
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                found[int(entry)] = fh.read()
        except OSError:
            continue
    return found


def _wait_for(what: str, cond: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture()
def action(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(mark, policy file, program file); kills whatever is left marked afterwards."""
    mark = f"llmos-lifeline-{uuid.uuid4().hex}"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "llmos-policy: 1\nactions:\n  python:\n    handler: python\n"
        "    timeout_s: 60\n    cpu_s: 60\n    env: [LLMOS_MARK]\n"
    )
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    yield mark, str(policy), str(program)
    for pid in marked(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def _start(mode: str, mark: str, policy: str, program: str) -> subprocess.Popen[bytes]:
    """The runtime, with `mark` in its environment; the policy passes it on to the action."""
    if mode in ("probed", "no-bwrap"):  # the command a user runs
        flags = ["--no-bwrap"] if mode == "no-bwrap" else []
        argv = [sys.executable, "-m", "llmos_grammar.cli.main", "exec", "--policy", policy]
        argv += ["--action", "python", *flags, program]
    else:
        argv = [sys.executable, "-c", DRIVER, mode, policy, program]
    env = {**os.environ, "LLMOS_MARK": mark}
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _leftovers(pid: int) -> list[str]:
    """cgroups (named after the runtime's pid) and scratch folders the runtime left."""
    from llmos_grammar.sandbox.probe import probe

    caps = probe()
    found = []
    for base in (caps.pids_cgroup, caps.memory_cgroup, caps.cpu_cgroup):
        if base is not None:
            found += [n for n in os.listdir(base.path) if n.startswith(f"llmos-{pid}-")]
    return found


def _started(mark: str) -> bool:
    argvs = list(marked(mark).values())
    return b"sleep\x00301\x00" in argvs and b"sleep\x00300\x00" in argvs


@pytest.mark.sandbox
@pytest.mark.parametrize("mode", list(MODES))
def test_sigkill_of_the_runtime_ends_the_whole_sandbox(
    mode: str, action: tuple[str, str, str]
) -> None:
    mark, policy, program = action
    kill_tree = (
        "kill_tree" in make_plan(ActionPolicy(name="p", handler="python"), MODES[mode]).enforced
    )
    parent = _start(mode, mark, policy, program)
    try:
        _wait_for("the action's processes", lambda: _started(mark), 20)
    finally:
        parent.kill()
        _, err = parent.communicate()
    assert parent.returncode == -signal.SIGKILL, err

    def gone() -> bool:
        left = marked(mark).values()
        # without kill_tree a setsid daemon outlives even a normal end (docs/sandbox.md)
        return not [a for a in left if kill_tree or a != b"sleep\x00301\x00"]

    _wait_for(f"the sandbox to end after its runtime was killed [{mode}]", gone, 5)
    _wait_for("its cgroups to be removed", lambda: not _leftovers(parent.pid), 10)


@pytest.mark.sandbox
@pytest.mark.parametrize("mode", list(MODES))
def test_sigkill_of_the_runtime_ends_its_warm_standby(
    mode: str, action: tuple[str, str, str]
) -> None:
    mark, policy, _ = action
    env = {**os.environ, "LLMOS_MARK": mark}
    argv = [sys.executable, "-c", STANDBY, mode, policy]
    parent = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        standby = lambda: any(b"_llmos_main" in a for a in marked(mark).values())  # noqa: E731
        _wait_for("the standby sandbox", standby, 20)
    finally:
        parent.kill()
        _, err = parent.communicate()
    assert parent.returncode == -signal.SIGKILL, err
    _wait_for(
        f"the standby to end after its runtime was killed [{mode}]", lambda: not marked(mark), 5
    )
    _wait_for("its cgroups to be removed", lambda: not _leftovers(parent.pid), 10)


# Execs the rest of argv with SIGINT's disposition set as named: a runtime started in the
# background by a shell without job control (many test and CI runners) inherits it ignored.
WITH_SIGINT = """import os, signal, sys
signal.signal(signal.SIGINT, getattr(signal, sys.argv[1]))
os.execv(sys.argv[2], sys.argv[2:])
"""


@pytest.mark.parametrize("inherited", ["SIG_DFL", "SIG_IGN"])
def test_sigint_exits_130_and_ends_the_sandbox(
    inherited: str, action: tuple[str, str, str]
) -> None:
    mark, policy, program = action
    argv = [sys.executable, "-m", "llmos_grammar.cli.main", "exec", "--policy", policy]
    argv = [sys.executable, "-c", WITH_SIGINT, inherited, *argv, "--action", "python", program]
    env = {**os.environ, "LLMOS_MARK": mark}
    parent = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for("the action's processes", lambda: _started(mark), 60)
        parent.send_signal(signal.SIGINT)
        parent.wait(timeout=30)
    finally:
        parent.kill()
        _, err = parent.communicate()
    assert parent.returncode == 130, err
    assert b"llmos: interrupted" in err
    _wait_for("the sandbox to end after Ctrl-C", lambda: not marked(mark), 10)


def test_a_session_outlives_the_thread_that_started_it() -> None:
    # The parent-death signal follows the thread that forked: a session (or a warm
    # standby) started from a worker thread must not die when that thread ends.
    ap = ActionPolicy(name="s", handler="python", persistent=True)
    with ActionRunner(Policy("p.yaml", {"s": ap}), warm=False) as runner:
        first: list[object] = []
        worker = threading.Thread(target=lambda: first.append(runner.run("s", "x = 41\n")))
        worker.start()
        worker.join()
        # the kernel sends a parent-death signal while the thread's task exits
        task = f"/proc/self/task/{worker.native_id}"
        _wait_for("the thread's task to end", lambda: not os.path.exists(task), 10)
        result = runner.run("s", "print(x + 1)\n")
    assert result.ok and result.stdout == "42\n", result
