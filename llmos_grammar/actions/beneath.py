"""Open a path beneath a folder's fd, following no links: openat2, or an O_NOFOLLOW walk.

`open_beneath(root_fd, parts, flags)` resolves `parts` (names, no "." or "..")
inside the folder `root_fd` and opens the last one in the same step, so the fd
it returns is the file it resolved; a rename race cannot swap the path between
a check and the open. Linux 5.6+ does it in one `openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`; where that call is missing
(ENOSYS, or a seccomp filter that answers EPERM) each folder on the way is
opened from the one before with O_NOFOLLOW | O_DIRECTORY and the last name with
O_NOFOLLOW. Either way a symbolic link anywhere on the way fails with ELOOP and
a path that would leave the folder with EXDEV.
"""

from __future__ import annotations

import errno
import functools
import os
import platform
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

# linux/openat2.h
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
# openat2 has the same number on every architecture of the unified syscall table
SYS_OPENAT2 = 437
_UNIFIED = ("x86_64", "aarch64", "arm64", "armv7l", "riscv64", "ppc64le", "s390x", "i686")
_RETRIES = 16  # EAGAIN: a rename raced the lookup; the kernel asks to try again
_FOLDER = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Openat2 = Callable[[int, bytes, int, int, int], int]


def _syscall_openat2(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
    """The raw openat2(2) call through libc's syscall(); raises OSError like os.open."""
    import ctypes

    if platform.machine() not in _UNIFIED:
        raise OSError(errno.ENOSYS, "openat2 is not known on this architecture")
    libc, open_how = _libc()
    how = open_how(flags, mode if flags & os.O_CREAT else 0, resolve)
    fd = int(
        libc.syscall(
            ctypes.c_long(SYS_OPENAT2),
            ctypes.c_long(dirfd),
            ctypes.c_char_p(path),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), os.fsdecode(path))
    return fd


@functools.cache
def _libc() -> tuple[ctypes.CDLL, type[ctypes.Structure]]:
    import ctypes

    class OpenHow(ctypes.Structure):  # struct open_how
        _fields_ = [
            ("flags", ctypes.c_uint64),
            ("mode", ctypes.c_uint64),
            ("resolve", ctypes.c_uint64),
        ]

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc, OpenHow


# Replaced by tests to take the fallback path; probed once per implementation.
openat2: Openat2 = _syscall_openat2
_available: dict[Openat2, bool] = {}


def openat2_works() -> bool:
    """Whether `openat2` can be called here (probed once per implementation)."""
    known = _available.get(openat2)
    if known is None:
        try:
            os.close(openat2(-100, b"/", _FOLDER, 0, RESOLVE_NO_SYMLINKS))  # AT_FDCWD
            known = True
        except OSError as exc:
            known = exc.errno not in (errno.ENOSYS, errno.EPERM)
        _available[openat2] = known
    return known


def open_beneath(root_fd: int, parts: Sequence[str], flags: int, mode: int = 0o644) -> int:
    """An fd opened with `flags` for `parts` inside `root_fd` (no part is "", "." or "..").

    No part may be a symbolic link (ELOOP); an empty `parts` opens the folder itself.
    """
    if any(part in ("", ".", "..") or "/" in part for part in parts):
        raise ValueError(f"not a normalized path: {parts!r}")
    flags |= os.O_CLOEXEC | os.O_NOFOLLOW
    if openat2_works():
        path = os.fsencode("/".join(parts) or ".")
        for _ in range(_RETRIES):
            try:
                return openat2(root_fd, path, flags, mode, RESOLVE)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR:
                    _name_the_link(root_fd, parts, flags)
                if exc.errno != errno.EAGAIN:
                    raise
        raise OSError(errno.EAGAIN, "the path kept changing while it was opened")
    return walk_open(root_fd, parts, flags, mode)


def _name_the_link(root_fd: int, parts: Sequence[str], flags: int) -> None:
    """ELOOP when an ENOTDIR from openat2 came from a link (O_DIRECTORY on a link says so)."""
    try:
        os.close(_walk(root_fd, parts, os.O_PATH | (flags & os.O_DIRECTORY), 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise
    # no link found (or it changed since): the caller raises the first error


def walk_open(root_fd: int, parts: Sequence[str], flags: int, mode: int = 0o644) -> int:
    """The fallback: one folder at a time, each opened from the last with O_NOFOLLOW."""
    return _walk(root_fd, parts, flags, mode)


def _walk(root_fd: int, parts: Sequence[str], flags: int, mode: int) -> int:
    if not parts:
        return os.open(".", flags, mode, dir_fd=root_fd)
    current = root_fd
    try:
        for name in parts[:-1]:
            folder = _step(name, current, _FOLDER, 0)
            if current != root_fd:
                os.close(current)
            current = folder
        return _step(parts[-1], current, flags | os.O_NOFOLLOW, mode)
    finally:
        if current != root_fd:
            os.close(current)


def _step(name: str, dir_fd: int, flags: int, mode: int) -> int:
    try:
        return os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        # O_NOFOLLOW | O_DIRECTORY on a link says ENOTDIR; name the real reason
        if exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_link(name, dir_fd):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name) from None
        raise


def _is_link(name: str, dir_fd: int) -> bool:
    import stat

    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
