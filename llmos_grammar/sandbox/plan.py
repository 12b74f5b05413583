"""Decide, for one action policy on this machine, which layers apply and how to start the child."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.sandbox.binds import open_nofollow
from llmos_grammar.sandbox.cgroup import CgroupBase
from llmos_grammar.sandbox.etc import etc_argv
from llmos_grammar.sandbox.prelude import STAGE_SHM, STAGE_TMP, ensure_stage, make_prelude
from llmos_grammar.sandbox.probe import NOBODY, UNSHARE_ARGS, Capabilities
from llmos_grammar.sandbox.spawn import Launch
from llmos_grammar.sandbox.sysfs import sys_argv

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
INSIDE_WORKDIR = "/tmp/work"
HIDDEN = ("/root", "/home", "/tmp", "/var/tmp", "/run/user", "/mnt", "/media")


@dataclass(frozen=True)
class Plan:
    """The layers one action gets: `enforced` and `unenforced` hold layer names."""

    bwrap: str | None
    setpriv: str | None
    unshare: str | None  # used only when bwrap is not
    cgroup_bases: tuple[CgroupBase, ...]
    plain_uid_drop: bool
    enforced: tuple[str, ...]
    unenforced: tuple[str, ...]
    ipc_limits: bool = False  # the child enters its IPC namespace itself, with limits
    capped_tmpfs: bool = False  # /tmp and /dev/shm are inode-capped tmpfs the child mounts

    @property
    def pid_namespace(self) -> bool:
        """Whether the action has its own PID namespace (the end of its init ends the tree)."""
        return self.bwrap is not None or self.unshare is not None


def make_plan(policy: ActionPolicy, caps: Capabilities, warm: bool = False) -> Plan:
    """Match what `policy` asks for with what `caps` says works.

    Joining a cgroup costs an RCU grace period (5-15 ms here), so when bubblewrap
    and the uid drop already cap processes (RLIMIT_NPROC) and end the tree (PID
    namespace), per-action cgroups are used only for a warm standby child (paid
    ahead of time) or when the policy's options say `cgroup: true`; they then
    add a total memory cap over all the action's processes ("memory_total").
    """
    bwrap = caps.bwrap
    setpriv = caps.setpriv if bwrap else None
    uid = bool(bwrap and setpriv) or (not bwrap and caps.plain_uid_drop)
    enforced = ["timeout", "cpu", "memory", "file_size", "open_files", "output", "env", "workdir"]
    unenforced: list[str] = []

    def layer(name: str, ok: bool) -> None:
        (enforced if ok else unenforced).append(name)

    unshare = None if bwrap else caps.unshare
    namespaces = bwrap is not None or unshare is not None
    layer("processes", caps.pids_cgroup is not None or uid)
    layer("kill_tree", caps.pids_cgroup is not None or namespaces)
    layer("pid_namespace", namespaces)
    if not policy.network:
        layer("network", namespaces)
    layer("filesystem", bwrap is not None)
    layer("minimal_etc", bwrap is not None)
    layer("uid", uid or not caps.root)
    layer("disk", bwrap is not None and policy.workdir == "temporary")
    ipc_limits = caps.ipc_limits
    capped_tmpfs = bwrap is not None and caps.capped_tmpfs
    layer("ipc", namespaces or ipc_limits)
    # code that keeps root outside bwrap (whose /proc/sys is read-only) could raise them
    layer("ipc_limits", ipc_limits and (bwrap is not None or uid))
    layer("dev_shm", bwrap is not None)
    layer("inodes", capped_tmpfs and policy.workdir == "temporary")
    layer("minimal_sys", bwrap is not None)
    groups = (caps.pids_cgroup, caps.memory_cgroup, caps.cpu_cgroup)
    bases = tuple(b for b in groups if b is not None)
    if bwrap and uid and not warm and not policy.cgroup:
        bases = ()
    if caps.memory_cgroup is not None and caps.memory_cgroup in bases:
        enforced.append("memory_total")
    return Plan(
        bwrap=bwrap,
        setpriv=setpriv,
        unshare=unshare,
        cgroup_bases=bases,
        plain_uid_drop=uid and not bwrap,
        enforced=tuple(enforced),
        unenforced=tuple(unenforced),
        ipc_limits=ipc_limits,
        capped_tmpfs=capped_tmpfs,
    )


def unshare_argv(policy: ActionPolicy, plan: Plan) -> list[str]:
    """util-linux unshare: new PID (the program is its PID 1, /proc remounted), IPC, UTS
    and, with `network: false`, network namespaces; the filesystem stays the host's."""
    assert plan.unshare is not None
    argv = [plan.unshare, *UNSHARE_ARGS]
    if not plan.ipc_limits:  # else the child entered one, with limits (sandbox.prelude)
        argv.append("--ipc")
    if not policy.network:
        argv.append("--net")
    return [*argv, "--"]


def limits_of(policy: ActionPolicy, plan: Plan) -> dict[str, object]:
    """The limits recorded with the result (what applied, in policy units)."""
    return {
        "timeout_s": policy.timeout_s,
        "cpu_s": policy.cpu_s,
        "memory_mb": policy.memory_mb,
        "output_bytes": policy.output_bytes,
        "processes": policy.processes,
        "open_files": policy.open_files,
        "file_size_mb": policy.file_size_mb,
        "disk_mb": policy.disk_mb,
        "network": policy.network,
        "layers": list(plan.enforced),
    }


def scrub_env(
    policy: ActionPolicy, home: str, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A fresh environment: fixed safe values plus the names (or NAME=value) the policy allows."""
    source = os.environ if source is None else source
    bindir = os.path.dirname(sys.executable)
    env = {
        "PATH": f"{bindir}:{SAFE_PATH}",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for entry in policy.env:
        name, sep, value = entry.partition("=")
        if sep:
            env[name] = value
        elif name in source:
            env[name] = source[name]
    return env


def _user_processes(uid: int) -> int:
    """How many tasks `uid` runs now: RLIMIT_NPROC counts every thread, not only processes."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count


def cpu_rlimit(policy: ActionPolicy) -> int:
    """RLIMIT_CPU in whole seconds (`cpu_s` rounded up): soft = hard, so the kernel ends a
    process with SIGKILL there (a pid 1 would ignore SIGXCPU)."""
    return max(1, int(policy.cpu_s + 0.999))


def _rlimits(policy: ActionPolicy, nproc_base: int = 0) -> tuple[tuple[str, int, int], ...]:
    """(prlimit name, soft, hard) of each rlimit the child gets."""
    cpu = cpu_rlimit(policy)
    mem = policy.memory_mb * 1024 * 1024
    fsize = policy.file_size_mb * 1024 * 1024
    nproc = nproc_base + policy.processes
    return (
        ("cpu", cpu, cpu),
        ("as", mem, mem),
        ("fsize", fsize, fsize),
        ("nofile", policy.open_files, policy.open_files),
        ("nproc", nproc, nproc),
        ("core", 0, 0),
    )


def make_launch(policy: ActionPolicy, plan: Plan, join: list[str]) -> Launch:
    """What the started child does before the program (`llmos_grammar.sandbox.spawn`):
    join groups, as root set up its IPC limits and capped tmpfs
    (`llmos_grammar.sandbox.prelude`), maybe drop uid, die with the runtime, cap resources."""
    drop = plan.plain_uid_drop
    # RLIMIT_NPROC counts every process of the uid the code runs as, so the cap is
    # what that uid already runs plus the policy's `processes`: other sandboxes
    # alive as `nobody` (warm standbys, another run) must not eat this one's share.
    # A normal user's own processes count likewise; root's children that keep
    # uid 0 are capped by a pids cgroup only.
    if os.geteuid() != 0:
        base = _user_processes(os.geteuid())
    elif drop or (plan.bwrap and plan.setpriv):
        base = _user_processes(NOBODY)
    else:
        base = 0
    prelude = make_prelude(policy, plan.ipc_limits, plan.capped_tmpfs)
    if prelude.mounts:
        ensure_stage()
    return Launch(
        parent=os.getpid(),
        prelude=prelude,
        join=tuple(join),
        drop=drop,
        limits=_rlimits(policy, base),
    )


def _visible_again() -> list[str]:
    """Folders under hidden places the interpreter needs (a venv or pyenv in /root)."""
    wanted = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(p for p in wanted if any(p == h or p.startswith(h + "/") for h in HIDDEN))


def _open_parents(path: str) -> list[str]:
    """Make the folders above `path` inside a hidden tmpfs traversable (0755) for `nobody`."""
    argv: list[str] = []
    for hidden in HIDDEN:
        if path.startswith(hidden + "/"):
            parts = path[len(hidden) + 1 :].split("/")[:-1]
            for i in range(1, len(parts) + 1):
                argv += ["--perms", "0755", "--dir", "/".join([hidden, *parts[:i]])]
    return argv


def _dev_shm_argv(policy: ActionPolicy, plan: Plan) -> list[str]:
    """/dev/shm (POSIX shared memory) of the sandbox's own: a tmpfs of `memory_mb`."""
    if plan.capped_tmpfs:
        return ["--bind", STAGE_SHM, "/dev/shm"]
    return ["--perms", "1777", "--size", str(policy.memory_mb * 1024 * 1024), "--tmpfs", "/dev/shm"]


def bwrap_argv(
    policy: ActionPolicy,
    plan: Plan,
    host_workdir: str | None,
    data_fd: Callable[[bytes], int],
    pass_fd: Callable[[int], None],
) -> list[str]:
    """bubblewrap arguments: read-only root, minimal /etc and /sys, hidden homes, sized
    (and, as root, inode-capped) tmpfs for /tmp and /dev/shm, new namespaces, death
    with the parent. `data_fd(content)` passes the child a
    file descriptor to read `content` from (the generated /etc files); `pass_fd(fd)`
    hands bwrap an open descriptor (the policy's folders and files, bound by
    descriptor: see `open_nofollow`). Raises `BindRefused` when one of them is now
    reached through a symbolic link.

    With setpriv, PID 1 of the namespace is `sh`, which stays uid 0, runs the
    program (setpriv, then the code as uid 65534) and waits for it. bwrap drops
    its capabilities, so the signal of `--die-with-parent` could not reach a
    program that setpriv moved to another uid (the kernel checks kill
    permission, and the uid change clears the signal); it reaches `sh`, whose
    end ends the namespace and everything in it. `sh` reaps the program, so its
    CPU time reaches our wait4 (bwrap's own init would exit without being reaped).
    """
    assert plan.bwrap is not None
    argv = [plan.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    argv += ["--unshare-pid", "--as-pid-1", "--unshare-uts", "--unshare-cgroup-try"]
    if not plan.ipc_limits:  # else the child entered one, with limits (sandbox.prelude)
        argv.append("--unshare-ipc")
    if not policy.network:
        argv.append("--unshare-net")
    size = str(policy.disk_mb * 1024 * 1024)
    uid, gid = (NOBODY, NOBODY) if plan.setpriv else (os.getuid(), os.getgid())
    argv += etc_argv(policy.network, uid, gid, data_fd)
    argv += sys_argv()
    for hidden in HIDDEN:
        if hidden == "/tmp":  # the sized tmpfs that holds the working directory
            argv += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
            if plan.capped_tmpfs:  # covered by the inode-capped one (sandbox.prelude)
                argv += ["--bind", STAGE_TMP, "/tmp"]
        elif os.path.isdir(hidden):
            argv += ["--tmpfs", hidden]
    argv += _dev_shm_argv(policy, plan)
    for path in _visible_again():
        argv += _open_parents(path) + ["--ro-bind", path, path]
    binds = [("--ro-bind-fd", p) for p in policy.read if os.path.lexists(p)]
    binds += [("--bind-fd", p) for p in policy.write if os.path.lexists(p)]
    for option, path in binds:  # by descriptor: a link swapped in for the folder is refused
        fd = open_nofollow(path)
        pass_fd(fd)
        argv += _open_parents(path) + [option, str(fd), path]
    if host_workdir is None:
        argv += ["--perms", "0777", "--dir", INSIDE_WORKDIR]
        workdir = INSIDE_WORKDIR
    else:
        argv += ["--bind", host_workdir, host_workdir]
        workdir = host_workdir
    argv += ["--remount-ro", "/etc", "--chdir", workdir, "--die-with-parent", "--new-session"]
    if not plan.setpriv:
        argv += ["--cap-drop", "ALL"]
    else:
        argv += ["--", "/bin/sh", "-c", '"$@"; exit $?', "sh"]
        argv += [plan.setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        argv += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    argv.append("--")
    return argv
