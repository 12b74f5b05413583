"""Limits outside RLIMIT_AS and the tmpfs size: IPC limits, inode caps, /dev/shm, /sys, OOM."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from llmos_grammar.actions import ActionRunner, run_action
from llmos_grammar.ir import ActionPolicy, Policy
from llmos_grammar.sandbox import probe
from llmos_grammar.sandbox.cgroup import Cgroup
from llmos_grammar.sandbox.plan import bwrap_argv, make_plan, unshare_argv
from llmos_grammar.sandbox.prelude import (
    MSG_QUEUE_COST,
    PAGE,
    SEM_BYTES,
    STAGE_SHM,
    STAGE_TMP,
    inode_cap,
    ipc_limits,
    make_prelude,
    tmpfs_options,
)
from llmos_grammar.sandbox.probe import Capabilities
from llmos_grammar.sandbox.sysfs import KEEP
from tests.hostile.cases_limits import forked_blocks

CAPS = probe()
PY = ActionPolicy(name="py", handler="python", timeout_s=10, cpu_s=10, memory_mb=128)
ROOT_BWRAP = Capabilities(
    bwrap="/usr/bin/bwrap",
    setpriv="/usr/bin/setpriv",
    root=True,
    ipc_limits=True,
    capped_tmpfs=True,
)
MB = 1024 * 1024


def _needs(*layers: str, policy: ActionPolicy = PY) -> pytest.MarkDecorator:
    missing = [layer for layer in layers if layer not in make_plan(policy, CAPS).enforced]
    return pytest.mark.skipif(bool(missing), reason=f"not enforced here: {', '.join(missing)}")


def test_ipc_limits_keep_each_kind_within_memory_mb() -> None:
    values = dict(ipc_limits(128))
    assert int(values["shmmax"]) == 128 * MB
    assert int(values["shmall"]) * PAGE == 128 * MB
    semmsl, semmns, semopm, semmni = (int(v) for v in values["sem"].split())
    assert semmns * SEM_BYTES <= 128 * MB and (semmsl, semopm, semmni) == (32000, 500, 32000)
    assert int(values["msgmni"]) >= 1 and int(values["msgmni"]) * MSG_QUEUE_COST <= 128 * MB
    assert int(dict(ipc_limits(1))["msgmni"]) == 1  # never 0: msgget would then always fail


def test_tmpfs_options_cap_inodes_one_per_page() -> None:
    assert inode_cap(8) == 2048 and inode_cap(0) == 64
    assert tmpfs_options(8) == f"size={8 * MB},nr_inodes=2048,mode=1777"
    prelude = make_prelude(dataclasses.replace(PY, disk_mb=8), ipc=False, mounts=True)
    assert prelude.ipc == () and dict(prelude.mounts) == {
        STAGE_TMP: tmpfs_options(8),
        STAGE_SHM: tmpfs_options(128),
    }
    assert not make_prelude(PY, ipc=False, mounts=False)


def test_plan_layers_with_root_and_bwrap() -> None:
    plan = make_plan(PY, ROOT_BWRAP)
    assert plan.ipc_limits and plan.capped_tmpfs
    assert {"ipc", "ipc_limits", "dev_shm", "inodes", "minimal_sys"} <= set(plan.enforced)
    host_workdir = make_plan(dataclasses.replace(PY, workdir="/srv/work"), ROOT_BWRAP)
    assert "inodes" in host_workdir.unenforced  # empty files on a host folder are not capped


def test_plan_layers_without_root_or_bwrap() -> None:
    unprivileged = make_plan(PY, Capabilities(bwrap="/usr/bin/bwrap"))
    assert "ipc" in unprivileged.enforced and "dev_shm" in unprivileged.enforced
    assert {"ipc_limits", "inodes"} <= set(unprivileged.unenforced)
    # unshare without a uid drop: the limits are set, but code that keeps root could raise them
    root_unshare = make_plan(
        PY, Capabilities(unshare="/usr/bin/unshare", root=True, ipc_limits=True)
    )
    assert root_unshare.ipc_limits and "ipc_limits" in root_unshare.unenforced
    assert "--ipc" not in unshare_argv(PY, root_unshare)
    plain = make_plan(PY, Capabilities(unshare="/usr/bin/unshare", root=True))
    assert "--ipc" in unshare_argv(PY, plain) and "ipc" in plain.enforced
    bare = make_plan(PY, Capabilities(root=True))
    assert {"ipc", "ipc_limits", "dev_shm", "inodes", "minimal_sys"} <= set(bare.unenforced)


def _pairs(argv: list[str]) -> list[tuple[str, str]]:
    return list(zip(argv, argv[1:], strict=False))


def test_bwrap_argv_with_prelude_binds_capped_tmpfs_and_keeps_its_ipc_namespace() -> None:
    argv = bwrap_argv(PY, make_plan(PY, ROOT_BWRAP), None, lambda _: 3, lambda _: None)
    assert "--unshare-ipc" not in argv  # a new one would start with the kernel's defaults
    triples = list(zip(argv, argv[1:], argv[2:], strict=False))
    assert ("--bind", STAGE_TMP, "/tmp") in triples and ("--bind", STAGE_SHM, "/dev/shm") in triples
    assert argv.index(STAGE_TMP) > argv.index("/tmp")  # over the sized tmpfs, not under it


def test_bwrap_argv_without_prelude_sizes_dev_shm() -> None:
    caps = Capabilities(bwrap="/usr/bin/bwrap")
    argv = bwrap_argv(PY, make_plan(PY, caps), None, lambda _: 3, lambda _: None)
    assert "--unshare-ipc" in argv and STAGE_TMP not in argv
    at = argv.index("/dev/shm")
    assert argv[at - 5 : at + 1] == [
        "--perms",
        "1777",
        "--size",
        str(128 * MB),
        "--tmpfs",
        "/dev/shm",
    ]


def test_bwrap_argv_replaces_sys_with_cpu_and_numa_only() -> None:
    argv = bwrap_argv(PY, make_plan(PY, ROOT_BWRAP), None, lambda _: 3, lambda _: None)
    pairs = _pairs(argv)
    assert ("--tmpfs", "/sys") in pairs and ("--remount-ro", "/sys") in pairs
    bound = {b for a, b in pairs if a == "--ro-bind" and b.startswith("/sys")}
    assert bound and bound <= set(KEEP)
    assert argv.index("/sys") < min(argv.index(p) for p in bound) < argv.index("--remount-ro")


def _write_events(folder: str, name: str, text: str) -> Cgroup:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w", encoding="utf-8") as fh:
        fh.write(text)
    group = Cgroup([])
    group.paths["memory"] = (folder, 1 if name == "memory.oom_control" else 2)
    return group


def test_oom_kills_read_from_v1_and_v2_files(tmp_path: object) -> None:
    v1 = _write_events(f"{tmp_path}/v1", "memory.oom_control", "oom_kill_disable 0\noom_kill 3\n")
    v2 = _write_events(f"{tmp_path}/v2", "memory.events", "low 0\nmax 5\noom 1\noom_kill 2\n")
    quiet = _write_events(f"{tmp_path}/q", "memory.oom_control", "under_oom 0\noom_kill 0\n")
    assert (v1.oom_kills(), v2.oom_kills(), quiet.oom_kills()) == (3, 2, 0)
    assert v1.memory_failed() and v2.memory_failed()
    assert Cgroup([]).oom_kills() == 0  # no memory group: nothing to read


INSIDE = r"""
import json, os
names = ("shmmax", "shmall", "sem", "msgmni")
limits = {n: open(f"/proc/sys/kernel/{n}").read().split() for n in names}
fields = [line.split() for line in open("/proc/self/mounts")]
mounts = {f[1]: f[3] for f in fields if f[1] in ("/tmp", "/dev/shm")}
try:
    open("/proc/sys/kernel/shmmax", "w").write("1")
    raised = True
except OSError:
    raised = False
print(json.dumps({"limits": limits, "mounts": mounts, "raised": raised}))
"""


def _check_inside(stdout: str, policy: ActionPolicy) -> None:
    data = json.loads(stdout)
    expected = {name: value.split() for name, value in ipc_limits(policy.memory_mb)}
    assert {n: data["limits"][n] for n in ("shmmax", "shmall", "sem", "msgmni")} == {
        n: expected[n] for n in ("shmmax", "shmall", "sem", "msgmni")
    }
    assert not data["raised"], "code in the sandbox raised its own IPC limits"


@pytest.mark.sandbox
@_needs("ipc_limits")
def test_ipc_limits_hold_inside_cold_and_warm_sandboxes() -> None:
    result = run_action(PY, INSIDE)
    assert result.ok, result
    _check_inside(result.stdout, PY)
    with ActionRunner(Policy("p.yaml", {"py": PY}), warm=True) as runner:
        runner.run("py", "pass\n")
        warm = runner.run("py", INSIDE)  # from a standby sandbox started ahead
    assert warm.ok, warm
    _check_inside(warm.stdout, PY)


@pytest.mark.sandbox
@_needs("inodes")
def test_capped_tmpfs_inside_and_nothing_mounted_on_the_host() -> None:
    result = run_action(dataclasses.replace(PY, disk_mb=8), INSIDE)
    assert result.ok, result
    mounts = json.loads(result.stdout)["mounts"]
    assert (
        "nr_inodes=2048" in mounts["/tmp"] and f"nr_inodes={inode_cap(128)}" in mounts["/dev/shm"]
    )
    for folder in (STAGE_TMP, STAGE_SHM):
        assert not os.path.ismount(folder) and os.listdir(folder) == []


STDLIB = r"""
import concurrent.futures, multiprocessing, os, subprocess
from multiprocessing import shared_memory
block = shared_memory.SharedMemory(create=True, size=1 << 20)
block.buf[0] = 7
other = shared_memory.SharedMemory(name=block.name)
seen = other.buf[0]
other.close(); block.close(); block.unlink()
lock = multiprocessing.Lock()
with concurrent.futures.ProcessPoolExecutor(2) as pool:
    squares = list(pool.map(abs, [-2, -3]))
shell = subprocess.run(["bash", "-c", "nproc; ls /sys"], capture_output=True, text=True)
shell = shell.stdout.split()
print(os.cpu_count() >= 1, seen, squares, shell[0].isdigit(), shell[1:])
"""


@pytest.mark.sandbox
@_needs("minimal_sys", "dev_shm")
def test_python_bash_and_posix_shared_memory_work_under_minimal_sys() -> None:
    policy = dataclasses.replace(PY, memory_mb=512, processes=32)
    result = run_action(policy, STDLIB)
    assert result.ok, result
    assert result.stdout == "True 7 [2, 3] True ['devices']\n"


OOM_IN_SESSION = forked_blocks(2, 90, 1)


SESSION = dataclasses.replace(PY, persistent=True, cgroup=True)


@pytest.mark.sandbox
@_needs("memory_total", policy=SESSION)
def test_oom_kill_in_a_persistent_session_is_reported_and_the_session_goes_on() -> None:
    # two children of 90 MB, each within RLIMIT_AS, together past the 128 MB cgroup cap
    policy = SESSION
    with ActionRunner(Policy("p.yaml", {"py": policy}), warm=False) as runner:
        runner.run("py", "x = 6\n")
        killed = runner.run("py", OOM_IN_SESSION)
        after = runner.run("py", "print(x * 7)\n")
    assert killed.limit_hit == "memory" and not killed.ok, killed
    assert after.ok and after.stdout == "42\n", after
