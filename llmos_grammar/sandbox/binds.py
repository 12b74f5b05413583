"""Bind a policy's folders and files into bubblewrap by descriptor, never through a link."""

from __future__ import annotations

import errno
import os
import stat


class BindRefused(OSError):
    """A policy folder or file that can no longer be reached without following a link."""


def open_nofollow(path: str) -> int:
    """An O_PATH descriptor of the absolute `path`, opened one name at a time from `/`
    without following any symbolic link.

    Policy paths are resolved when the policy loads; an action with write access can
    later replace a folder (or the database) with a link to a place no policy names.
    bubblewrap binds what it is given by path, following links as root, so folders
    are bound by this descriptor instead, and a link anywhere on the way is refused.
    """
    parts = [p for p in path.split("/") if p]
    if not path.startswith("/") or any(p in (".", "..") for p in parts):
        raise BindRefused(errno.EINVAL, f"policy path {path} is not a plain absolute path")
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if last else os.O_DIRECTORY)
            try:
                step = os.open(name, flags, dir_fd=fd)
            except OSError as exc:
                where = "/" + "/".join(parts[: i + 1])
                reason = f"{where} is a symbolic link or missing ({exc.strerror})"
                raise BindRefused(exc.errno, f"policy path {path}: {reason}") from None
            os.close(fd)
            fd = step
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise BindRefused(
                errno.ELOOP, f"policy path {path} is now a symbolic link; it is not bound"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd
