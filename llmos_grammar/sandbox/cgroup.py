"""Per-action control groups: a process cap, a memory cap, peak memory, and kill-all."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass

_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class CgroupBase:
    """Where new per-action groups are made, for one controller ("pids" or "memory").

    `version` is 1 (a per-controller hierarchy) or 2 (the unified one).
    """

    controller: str
    path: str
    version: int


def _own_path(hierarchy: str) -> str:
    """This process's group inside a v1 hierarchy named `hierarchy` ("" = unified)."""
    with open("/proc/self/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _, names, path = line.rstrip("\n").split(":", 2)
            if (hierarchy and hierarchy in names.split(",")) or (not hierarchy and names == ""):
                return path
    return "/"


def _writable_base(mount: str, own: str) -> str | None:
    """The deepest group at or above `own` where we may create children."""
    path = os.path.join(mount, own.lstrip("/"))
    while path.startswith(mount):
        if os.access(path, os.W_OK) and os.path.isdir(path):
            return path
        path = os.path.dirname(path)
    return None


def find_base(controller: str) -> CgroupBase | None:
    """A writable place for `controller` groups, v1 first, then v2; None if neither."""
    v1 = os.path.join(_ROOT, controller)
    if os.path.isdir(v1) and os.path.exists(os.path.join(v1, "cgroup.procs")):
        base = _writable_base(v1, _own_path(controller))
        if base is not None:
            return CgroupBase(controller, base, 1)
    for mount in (_ROOT, os.path.join(_ROOT, "unified")):
        controllers = os.path.join(mount, "cgroup.controllers")
        if not os.path.exists(controllers):
            continue
        with open(controllers, encoding="utf-8") as fh:
            if controller not in fh.read().split():
                continue
        base = _writable_base(mount, _own_path(""))
        if base is not None:
            return CgroupBase(controller, base, 2)
    return None


class Cgroup:
    """One group per controller for one action; created, joined, killed, removed."""

    def __init__(self, bases: list[CgroupBase]) -> None:
        self.paths: dict[str, tuple[str, int]] = {}
        name = f"llmos-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for base in bases:
            path = os.path.join(base.path, name)
            if base.version == 2 and any(p == path for p, _ in self.paths.values()):
                self.paths[base.controller] = (path, 2)
                continue
            os.mkdir(path)
            self.paths[base.controller] = (path, base.version)

    def _write(self, controller: str, v1_file: str, v2_file: str, value: str) -> bool:
        if controller not in self.paths:
            return False
        path, version = self.paths[controller]
        try:
            with open(os.path.join(path, v1_file if version == 1 else v2_file), "w") as fh:
                fh.write(value)
            return True
        except OSError:
            return False

    def set_limits(self, processes: int, memory_mb: int) -> set[str]:
        """Apply the caps; return the names of those that took effect."""
        done = set()
        if self._write("pids", "pids.max", "pids.max", str(processes)):
            done.add("processes")
        limit = str(memory_mb * 1024 * 1024)
        if self._write("memory", "memory.limit_in_bytes", "memory.max", limit):
            self._write("memory", "memory.memsw.limit_in_bytes", "memory.swap.max", limit)
            self._write("memory", "memory.swappiness", "memory.swap.max", "0")
            done.add("memory")
        return done

    def procs_files(self) -> list[str]:
        """The `cgroup.procs` files a new child writes "0" into to join (distinct paths)."""
        return sorted({os.path.join(p, "cgroup.procs") for p, _ in self.paths.values()})

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files():
            with contextlib.suppress(OSError), open(procs, encoding="utf-8") as fh:
                found.update(int(x) for x in fh.read().split())
        return found

    def kill_all(self, rounds: int = 200) -> bool:
        """SIGKILL every member until the group is empty; True when it is."""
        for path, version in self.paths.values():
            if version == 2 and os.path.exists(os.path.join(path, "cgroup.kill")):
                with (
                    contextlib.suppress(OSError),
                    open(os.path.join(path, "cgroup.kill"), "w") as fh,
                ):
                    fh.write("1")
        for _ in range(rounds):
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)
        return not self.pids()

    def peak_memory_mb(self) -> float | None:
        if "memory" not in self.paths:
            return None
        path, version = self.paths["memory"]
        name = "memory.max_usage_in_bytes" if version == 1 else "memory.peak"
        try:
            with open(os.path.join(path, name), encoding="utf-8") as fh:
                return int(fh.read().strip()) / (1024 * 1024)
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int:
        """How many of the group's processes the kernel's OOM killer ended (the memory cap).

        v1 says it in `memory.oom_control` (`oom_kill`, kernel 4.13+), v2 in
        `memory.events`; either counts every member, whichever process died.
        """
        if "memory" not in self.paths:
            return 0
        path, version = self.paths["memory"]
        name = "memory.oom_control" if version == 1 else "memory.events"
        try:
            return int(_events(os.path.join(path, name)).get("oom_kill", "0"))
        except (OSError, ValueError):
            return 0

    def memory_failed(self) -> bool:
        """True when the memory cap ended a process (OOM kill) or refused an allocation
        (v1 failcnt, v2 max events)."""
        if "memory" not in self.paths:
            return False
        if self.oom_kills() > 0:
            return True
        path, version = self.paths["memory"]
        try:
            if version == 1:
                with open(os.path.join(path, "memory.failcnt"), encoding="utf-8") as fh:
                    return int(fh.read().strip()) > 0
            return int(_events(os.path.join(path, "memory.events")).get("max", "0")) > 0
        except (OSError, ValueError):
            return False

    def pids_failed(self) -> bool:
        """True when the process cap refused a fork."""
        if "pids" not in self.paths:
            return False
        path, _ = self.paths["pids"]
        try:
            return int(_events(os.path.join(path, "pids.events")).get("max", "0")) > 0
        except (OSError, ValueError):
            return False

    def cpu_seconds(self) -> float | None:
        """CPU time used by every member, living or gone (cpuacct / cpu.stat)."""
        if "cpuacct" not in self.paths:
            return None
        path, version = self.paths["cpuacct"]
        try:
            if version == 1:
                with open(os.path.join(path, "cpuacct.usage"), encoding="utf-8") as fh:
                    return int(fh.read().strip()) / 1e9
            with open(os.path.join(path, "cpu.stat"), encoding="utf-8") as fh:
                stats = dict(line.split() for line in fh if line.strip())
            return int(stats["usage_usec"]) / 1e6
        except (OSError, ValueError, KeyError):
            return None

    def remove(self) -> None:
        """Kill what is left and delete the groups (best effort)."""
        self.kill_all()
        for path, _ in self.paths.values():
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.002)


def _events(file: str) -> dict[str, str]:
    """A cgroup `*.events` file ("name count" per line) as a dict."""
    with open(file, encoding="utf-8") as fh:
        return dict(line.split() for line in fh if line.strip())
