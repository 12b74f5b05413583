"""What a root runtime sets up in the started child, before the uid drop and the program.

Two limits that neither bubblewrap nor rlimits give, set up by the exec
helper (`llmos_grammar.sandbox.spawn`: util-linux `unshare`, then `mount` and
writes under /proc/sys from its shell) before it execs bwrap or the program:

- **IPC limits.** The child enters a new IPC namespace and writes its
  sysctls so that System V shared memory, semaphores and message queues each
  stay within `memory_mb`. A new namespace starts with the kernel's defaults
  (shared memory up to 16 EiB, a billion semaphores), and none of it counts
  against RLIMIT_AS once a segment is detached. The values are written as
  root, before the uid drop; uid 65534 cannot raise them (the files are
  0644 root). Everything in the namespace ends with the sandbox.
- **Inode caps.** bubblewrap's `--tmpfs` takes a size but no `nr_inodes`, so
  empty files (which use no blocks) were bounded by nothing. With bubblewrap
  the child enters a private mount namespace and mounts two tmpfs there, with
  `size=` and `nr_inodes=`, on empty folders under `STAGE`; bwrap binds them in
  as the sandbox's /tmp (`disk_mb`) and /dev/shm (`memory_mb`). The mounts
  exist only in the child's namespace: on the host the folders stay empty.

Without root none of this applies: an unprivileged bwrap still gives an IPC
namespace (segments die with the sandbox) and a sized /dev/shm, but no IPC
limits and no inode caps (`llmos sandbox doctor` says which layers hold).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from llmos_grammar.ir import ActionPolicy

STAGE = "/run/llmos-sandbox"
STAGE_TMP = f"{STAGE}/tmp"
STAGE_SHM = f"{STAGE}/shm"
PAGE = 4096
MSG_QUEUE_BYTES = 16384  # kernel.msgmnb of a new namespace: bytes (and messages) per queue
SEM_BYTES = 64  # the kernel's `struct sem` is one cache line per semaphore
# A queue of one-byte messages costs about 64 bytes of kernel memory per message.
MSG_QUEUE_COST = MSG_QUEUE_BYTES * 64


@dataclass(frozen=True)
class Prelude:
    """What the child sets up: sysctls of a new IPC namespace, tmpfs in a new mount namespace."""

    ipc: tuple[tuple[str, str], ...] = ()  # name under /proc/sys/kernel -> value
    mounts: tuple[tuple[str, str], ...] = ()  # folder under STAGE -> tmpfs options

    def __bool__(self) -> bool:
        return bool(self.ipc or self.mounts)


def ipc_limits(memory_mb: int) -> tuple[tuple[str, str], ...]:
    """IPC sysctls that keep each kind of System V object within `memory_mb`."""
    size = memory_mb * 1024 * 1024
    semaphores = min(1_024_000_000, size // SEM_BYTES)
    return (
        ("shmmax", str(size)),
        ("shmall", str(size // PAGE)),
        ("shmmni", "4096"),
        ("sem", f"32000 {semaphores} 500 32000"),
        ("msgmni", str(max(1, min(32000, size // MSG_QUEUE_COST)))),
    )


def inode_cap(size_mb: int) -> int:
    """Inodes of a tmpfs of `size_mb`: one per 4 KiB page, as if every file held one page."""
    return max(64, size_mb * 1024 * 1024 // PAGE)


def tmpfs_options(size_mb: int) -> str:
    """Mount options of a sandbox tmpfs: its size, its inode cap, sticky and world-writable."""
    return f"size={size_mb * 1024 * 1024},nr_inodes={inode_cap(size_mb)},mode=1777"


def make_prelude(policy: ActionPolicy, ipc: bool, mounts: bool) -> Prelude:
    """The prelude of one action: IPC limits of `memory_mb`; /tmp of `disk_mb`, /dev/shm
    of `memory_mb`."""
    tmp = (STAGE_TMP, tmpfs_options(policy.disk_mb))
    shm = (STAGE_SHM, tmpfs_options(policy.memory_mb))
    return Prelude(
        ipc=ipc_limits(policy.memory_mb) if ipc else (), mounts=(tmp, shm) if mounts else ()
    )


def ensure_stage() -> None:
    """Make the (empty, root-only) folders the child mounts its tmpfs on."""
    for folder in (STAGE, STAGE_TMP, STAGE_SHM):
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=0o700, exist_ok=True)
