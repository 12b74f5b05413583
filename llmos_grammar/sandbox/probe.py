"""Find out, by trying, which isolation layers work on this machine."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.sandbox import prelude
from llmos_grammar.sandbox.cgroup import CgroupBase, find_base
from llmos_grammar.sandbox.spawn import NOBODY as NOBODY  # plan and runner read it here
from llmos_grammar.sandbox.spawn import Launch, helper_argv


@dataclass(frozen=True)
class Capabilities:
    """What this machine lets the sandbox do; each field was tried, not assumed."""

    bwrap: str | None = None  # path of a bubblewrap that ran a namespaced command
    setpriv: str | None = None  # drops to an unprivileged uid inside bwrap
    unshare: str | None = None  # util-linux unshare: PID/net namespaces when bwrap is absent
    pids_cgroup: CgroupBase | None = None
    memory_cgroup: CgroupBase | None = None
    cpu_cgroup: CgroupBase | None = None
    root: bool = False
    plain_uid_drop: bool = False  # without bwrap, can uid `nobody` run the interpreter?
    ipc_limits: bool = False  # root sets IPC limits in a new IPC namespace (sandbox.prelude)
    capped_tmpfs: bool = False  # root mounts inode-capped tmpfs for bwrap (sandbox.prelude)
    landlock: bool = False
    notes: tuple[str, ...] = ()


def _try(argv: list[str], cwd: str | None = None) -> tuple[bool, str]:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return done.returncode == 0, (done.stderr or b"").decode(errors="replace").strip()


def _probe_bwrap(notes: list[str]) -> str | None:
    if os.environ.get("LLMOS_SANDBOX_NO_BWRAP"):
        notes.append("bwrap: disabled by LLMOS_SANDBOX_NO_BWRAP")
        return None
    path = shutil.which("bwrap")
    if path is None:
        notes.append("bwrap: not installed (apt-get install -y bubblewrap)")
        return None
    argv = [path, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--unshare-ipc"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", "1048576", "--tmpfs", "/tmp"]
    ok, err = _try(argv + ["--die-with-parent", "--new-session", "/bin/true"])
    if not ok:
        notes.append(f"bwrap: present but cannot create namespaces here: {err}")
        return None
    return path


# IPC comes from the prelude where root can set its limits, else from `--ipc` (plan.py).
UNSHARE_ARGS = ("--pid", "--fork", "--kill-child", "--mount-proc", "--uts")


def _probe_unshare(root: bool) -> str | None:
    path = shutil.which("unshare")
    if path is None or not root:
        return None
    ok, _ = _try([path, *UNSHARE_ARGS, "--ipc", "--net", "--", "/bin/true"])
    return path if ok else None


def _prelude_works(mounts: bool) -> bool:
    """Whether the exec helper sets up the prelude: IPC limits and, with `mounts`, the
    capped tmpfs (what the child sees is read back)."""
    policy = ActionPolicy(name="probe", handler="python", memory_mb=64, disk_mb=4)
    step = prelude.make_prelude(policy, ipc=True, mounts=mounts)
    script = "cat /proc/sys/kernel/shmmax"
    expect = [dict(step.ipc)["shmmax"]]
    if mounts:
        script += f"; grep ' {prelude.STAGE_TMP} ' /proc/self/mounts"
        expect.append(prelude.tmpfs_options(4).split(",")[1])  # nr_inodes=...
    try:
        if mounts:
            prelude.ensure_stage()
        launch = Launch(parent=os.getpid(), prelude=step)
        done = subprocess.run(
            helper_argv(launch, ["/bin/sh", "-c", script]),
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    out = done.stdout.decode(errors="replace")
    return done.returncode == 0 and out.startswith(expect[0] + "\n") and expect[-1] in out


def _probe_prelude(root: bool, bwrap: str | None, notes: list[str]) -> tuple[bool, bool]:
    """(IPC limits work, capped tmpfs work); only root can set either up."""
    if not root:
        return False, False
    ipc = _prelude_works(mounts=False)
    tmpfs = bwrap is not None and _prelude_works(mounts=True)
    if not ipc:
        notes.append("ipc limits: cannot set sysctls in a new IPC namespace here")
    if bwrap and not tmpfs:
        notes.append(f"inode caps: cannot mount a capped tmpfs on {prelude.STAGE_TMP} here")
    return ipc, tmpfs


def _probe_plain_uid_drop() -> bool:
    launch = Launch(parent=os.getpid(), drop=True)
    ok, _ = _try(helper_argv(launch, [sys.executable, "-I", "-S", "-c", "pass"]), cwd="/")
    return ok


def _probe_landlock() -> bool:
    """Whether the kernel offers Landlock (reported by doctor; not used as a layer yet)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        abi = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, VERSION)
    except (OSError, AttributeError):
        return False
    return int(abi) > 0


@functools.cache
def probe() -> Capabilities:
    """Try each layer once per process and remember the answer."""
    notes: list[str] = []
    root = os.geteuid() == 0
    bwrap = _probe_bwrap(notes)
    setpriv = shutil.which("setpriv") if root else None
    if bwrap and root and setpriv is None:
        notes.append("setpriv: not found; code inside bwrap keeps uid 0")
    pids = find_base("pids")
    memory = find_base("memory")
    cpu = find_base("cpuacct")
    if pids is None:
        notes.append("cgroup pids: no writable controller; process cap is RLIMIT_NPROC only")
    if memory is None:
        notes.append("cgroup memory: no writable controller; memory cap is RLIMIT_AS only")
    plain = root and _probe_plain_uid_drop()
    ipc, tmpfs = _probe_prelude(root, bwrap, notes)
    if root and not plain:
        notes.append("uid drop without bwrap: `nobody` cannot run the interpreter here")
    return Capabilities(
        bwrap=bwrap,
        setpriv=setpriv,
        unshare=_probe_unshare(root),
        pids_cgroup=pids,
        memory_cgroup=memory,
        cpu_cgroup=cpu,
        root=root,
        plain_uid_drop=plain,
        ipc_limits=ipc,
        capped_tmpfs=tmpfs,
        landlock=_probe_landlock(),
        notes=tuple(notes),
    )


def without_bwrap(caps: Capabilities) -> Capabilities:
    """The same machine as if bubblewrap were absent (tests, `doctor --compare`)."""
    return dataclasses.replace(caps, bwrap=None, notes=caps.notes + ("bwrap: disabled on request",))
