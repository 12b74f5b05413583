"""Hostile cases for memory and files outside RLIMIT_AS and the tmpfs size.

System V shared memory, semaphores and message queues, POSIX shared memory
in /dev/shm, empty-file (inode) floods, host details under /sys, and OOM
kills in the memory cgroup. The shared-memory cases also check, from the
host, that what the action held is freed once it ends: `/proc/meminfo`'s
`Shmem` counts every namespace's segments and tmpfs pages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmos_grammar.actions import ActionRunner
from llmos_grammar.ir import Policy
from llmos_grammar.results import ActionResult
from llmos_grammar.sandbox.prelude import MSG_QUEUE_COST, SEM_BYTES, inode_cap
from llmos_grammar.sandbox.probe import Capabilities
from tests.hostile.cases import Case, Context

MB = 1024 * 1024
SEGMENT_MB = 64
MARK = "llmos-hostile-shm"
RELEASE_MARGIN_KB = 48 * 1024  # other processes' shared memory may move a little meanwhile
_shmem_before: dict[str, int] = {}

SYSV_SHM = f"""import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
made = globals().get("made", 0)  # a persistent session keeps the count between actions
error = ""
for _ in range(10):
    sid = libc.shmget(0, {SEGMENT_MB} << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if sid < 0:
        error = os.strerror(ctypes.get_errno())
        break
    addr = libc.shmat(sid, None, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        error = os.strerror(ctypes.get_errno())
        break
    ctypes.memset(addr, 1, {SEGMENT_MB} << 20)  # the pages are really used
    libc.shmdt(ctypes.c_void_p(addr))  # detached: no longer in RLIMIT_AS, still held
    made += 1
print(json.dumps({{"made": made, "error": error}}))
"""
POSIX_SHM = f"""import json
written = 0
try:
    for i in range(24):
        with open(f"/dev/shm/{MARK}-{{i}}", "wb") as fh:
            fh.write(b"1" * (8 << 20))
        written += 8
finally:
    print(json.dumps({{"written_mb": written}}), flush=True)
"""
EMPTY_FILES = """import os
os.chdir({folder!r})
n = 0
try:
    while n < 1_000_000:
        open(f"e{{n}}", "w").close()
        n += 1
finally:
    print(n, flush=True)
"""
SEMAPHORES = """import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
sets, error = 0, ""
for _ in range(200):  # 200 sets of 32000 semaphores: 400 MB of kernel memory
    if libc.semget(0, 32000, 0o1600) < 0:
        error = os.strerror(ctypes.get_errno())
        break
    sets += 1
print(json.dumps({"sets": sets, "error": error}))
"""
MESSAGE_QUEUES = """import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
queues, error = 0, ""
for _ in range(40000):  # each queue may hold 16384 messages (about 1 MB of kernel memory)
    if libc.msgget(0, 0o1600) < 0:
        error = os.strerror(ctypes.get_errno())
        break
    queues += 1
print(json.dumps({"queues": queues, "error": error}))
"""
HOST_SYS = """import json, os
places = ("/sys/class/net", "/sys/devices/virtual/net", "/sys/class/dmi/id", "/sys/firmware",
          "/sys/fs/cgroup", "/sys/block", "/sys/bus/pci", "/sys/kernel")
macs = []
for folder, _, files in os.walk("/sys"):
    if "address" in files:
        try:
            macs.append(open(os.path.join(folder, "address")).read().strip())
        except OSError:
            pass
shown = [p for p in places if os.path.exists(p)]
print(json.dumps({"shown": shown, "macs": macs, "cpus": os.cpu_count()}))
"""


def forked_blocks(children: int, mb: int, hold_s: float) -> str:
    """A program whose children each touch `mb` MB (within RLIMIT_AS) and hold it `hold_s`."""
    return f"""import os, time
kids = []
for _ in range({children}):
    pid = os.fork()
    if pid == 0:
        block = bytearray({mb} << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep({hold_s})
        os._exit(0)
    kids.append(pid)
print([os.waitpid(pid, 0)[1] for pid in kids])
"""


OOM_CHILDREN = forked_blocks(4, 100, 2)  # 4 x 100 MB: together past the cgroup's cap


def _shmem_kb() -> int:
    """Shared memory held on this machine, all namespaces together (kB)."""
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Shmem:"):
                return int(line.split()[1])
    return 0


def _noting_shmem(text: str) -> Callable[[Context], str]:
    """The case's text; asking for it (just before the action runs) notes the host's Shmem."""

    def make(ctx: Context) -> str:
        _shmem_before[ctx.root] = _shmem_kb()
        return text

    return make


def _released(ctx: Context, deadline_s: float = 10.0) -> str | None:
    """None once the host's Shmem is back near what it was before the action (namespaces
    are freed by a kernel worker, shortly after the sandbox ends)."""
    before = _shmem_before.pop(ctx.root, None)
    if before is None:
        return "no Shmem noted before the action"
    deadline = time.monotonic() + deadline_s
    while (now := _shmem_kb()) > before + RELEASE_MARGIN_KB:
        if time.monotonic() > deadline:
            return f"shared memory still held after the action: {(now - before) // 1024} MB"
        time.sleep(0.05)
    return None


def _report(r: ActionResult) -> dict[str, object] | None:
    """The JSON line the action printed last, or None."""
    lines = r.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _number(data: dict[str, object] | None, key: str) -> int | None:
    value = (data or {}).get(key)
    return value if isinstance(value, int) else None


def _memory_mb(r: ActionResult) -> int:
    value = r.limits.get("memory_mb")
    return value if isinstance(value, int) else 0


def _sysv_shm_check(r: ActionResult, ctx: Context) -> str | None:
    """At most memory_mb of segments (or the memory cgroup ended it), none left after."""
    problem = None
    if r.limit_hit != "memory":
        made = _number(_report(r), "made")
        if made is None:
            problem = f"no report: {r.status} {r.stderr[-200:]!r}"
        elif made * SEGMENT_MB > _memory_mb(r):
            problem = f"{made} segments of {SEGMENT_MB} MB held under memory_mb {_memory_mb(r)}"
    return problem or _released(ctx)


def _posix_shm_check(r: ActionResult, ctx: Context) -> str | None:
    """Writes past memory_mb in /dev/shm fail, and nothing is left in the host's /dev/shm."""
    written = _number(_report(r), "written_mb")
    shm = "/dev/shm"
    left = [n for n in os.listdir(shm) if n.startswith(MARK)] if os.path.isdir(shm) else []
    for name in left:
        os.unlink(os.path.join(shm, name))
    bounded = r.limit_hit == "memory" or (written is not None and written <= _memory_mb(r))
    if r.ok or not bounded:  # the memory cgroup, where there is one, charges tmpfs pages too
        return f"/dev/shm took {written} MB under memory_mb {_memory_mb(r)}: {r.status}"
    if left:
        return f"files left in the host's /dev/shm: {left[:3]}"
    return _released(ctx)


def _inode_check(size_key: str) -> Callable[[ActionResult, Context], str | None]:
    def check(r: ActionResult, _: Context) -> str | None:
        size = r.limits.get(size_key)
        cap = inode_cap(size) if isinstance(size, int) else 0
        made = r.stdout.strip()
        if r.limit_hit != "disk" or not made.isdigit() or int(made) > cap:
            return f"empty files not capped at {cap}: {made or 'none'} made, {r.status}"
        return None

    return check


def _semaphore_check(r: ActionResult, _: Context) -> str | None:
    """Within memory_mb of kernel memory, or ended by the memory cgroup (which charges it)."""
    sets = _number(_report(r), "sets")
    if r.limit_hit == "memory":
        return None
    if sets is None or sets * 32000 * SEM_BYTES > _memory_mb(r) * MB:
        return f"{sets} sets of 32000 semaphores under memory_mb {_memory_mb(r)}: {r.status}"
    return None


def _queue_check(r: ActionResult, _: Context) -> str | None:
    queues = _number(_report(r), "queues")
    if r.limit_hit == "memory":
        return None
    if queues is None or queues * MSG_QUEUE_COST > max(_memory_mb(r) * MB, MSG_QUEUE_COST):
        return f"{queues} message queues under memory_mb {_memory_mb(r)}: {r.status}"
    return None


def _sys_check(r: ActionResult, _: Context) -> str | None:
    data = _report(r)
    if not r.ok or data is None:
        return f"python failed under the minimal /sys: {r.status} {r.stderr[-200:]!r}"
    cpus = _number(data, "cpus")
    if data.get("shown") or data.get("macs") or not cpus:
        return f"host details under /sys: {data}"
    return None


def _oom_check(r: ActionResult, _: Context) -> str | None:
    return None if r.limit_hit == "memory" else f"OOM kill not reported as memory: {r.status}"


@dataclass(frozen=True)
class SessionCase(Case):
    """A case whose text runs `repeat` times in one persistent python session (then closed);
    the last result is checked."""

    repeat: int = 2

    def run(self, ctx: Context, caps: Capabilities, warm: bool = False) -> ActionResult:
        policy = dataclasses.replace(self.policy(ctx), persistent=True)
        text = self.text(ctx)
        with ActionRunner(
            Policy("hostile.yaml", {self.name: policy}), caps=caps, warm=False
        ) as run:
            results = [run.run(self.name, text) for _ in range(self.repeat)]
        return results[-1]


SHM_POLICY = {"memory_mb": 128, "timeout_s": 10.0}
CASES: tuple[Case, ...] = (
    Case(
        "sysv_shm_flood",
        "python",
        _noting_shmem(SYSV_SHM),
        _sysv_shm_check,
        overrides=SHM_POLICY,
        needs=("ipc_limits",),
        expect="at most memory_mb of segments (shmget fails), all freed when the action ends",
    ),
    SessionCase(
        "sysv_shm_flood_session",
        "python",
        _noting_shmem(SYSV_SHM),
        _sysv_shm_check,
        overrides=SHM_POLICY,
        needs=("ipc_limits",),
        expect="at most memory_mb of segments across a session's actions, freed when it ends",
    ),
    Case(
        "posix_shm_flood",
        "python",
        _noting_shmem(POSIX_SHM),
        _posix_shm_check,
        overrides=SHM_POLICY,
        needs=("dev_shm",),
        expect="/dev/shm is the sandbox's own tmpfs of memory_mb: writes past it fail",
    ),
    Case(
        "inode_flood",
        "python",
        lambda _: EMPTY_FILES.format(folder="."),
        _inode_check("disk_mb"),
        overrides={"disk_mb": 8, "timeout_s": 10.0},
        needs=("inodes",),
        expect="empty files stop at the tmpfs inode cap (one per 4 KiB of disk_mb): limit disk",
    ),
    Case(
        "inode_flood_dev_shm",
        "python",
        lambda _: EMPTY_FILES.format(folder="/dev/shm"),
        _inode_check("memory_mb"),
        overrides={"memory_mb": 96, "timeout_s": 10.0},
        needs=("inodes",),
        expect="empty files in /dev/shm stop at its inode cap (one per 4 KiB of memory_mb)",
    ),
    Case(
        "sysv_semaphore_flood",
        "python",
        lambda _: SEMAPHORES,
        _semaphore_check,
        overrides=SHM_POLICY,
        needs=("ipc_limits",),
        expect="semaphores within memory_mb of kernel memory (semget fails past it)",
    ),
    Case(
        "sysv_message_queues",
        "python",
        lambda _: MESSAGE_QUEUES,
        _queue_check,
        overrides=SHM_POLICY,
        needs=("ipc_limits",),
        expect="message queues within memory_mb of kernel memory (msgget fails past it)",
    ),
    Case(
        "sys_host_details",
        "python",
        lambda _: HOST_SYS,
        _sys_check,
        needs=("minimal_sys",),
        expect="/sys holds only CPU and NUMA topology: no NICs, MAC addresses or DMI ids",
    ),
    Case(
        "oom_in_cgroup",
        "python",
        lambda _: OOM_CHILDREN,
        _oom_check,
        overrides={"memory_mb": 200, "cgroup": True, "timeout_s": 10.0},
        needs=("memory_total",),
        expect="children past the memory cgroup's cap are OOM-killed: limit memory",
    ),
)
