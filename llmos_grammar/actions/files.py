"""The `files` handler: list, read and (when allowed) write inside the policy's folders.

Command language (one command per action; the first line is the command):

    list DIR            names in DIR, one per line, folders end with "/"
    read PATH           the text of PATH (at most `output_bytes`)
    write PATH          the lines after the first are the new content of PATH
    <content...>
    append PATH         like write, added at the end
    <content...>

What is enforced, and how:
- PATH is absolute or relative to the first allowed folder. It is normalized as
  text ("." and ".." removed, repeated "/" collapsed) and must then fall under
  one of the allowed folders: `read` and `write` folders for list and read,
  `write` folders for write and append (the deepest matching folder is used).
- The rest of the path is opened relative to that folder's fd with
  `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, or
  where the kernel lacks it one folder at a time with O_NOFOLLOW (see
  `beneath.py`). A symbolic link anywhere on the way is refused, even one that
  points inside, and the fd read or written is the one that was resolved, so
  swapping a folder for a link while the handler runs gains nothing.
- Only regular files are read or written: a FIFO, device or socket is opened
  with O_NONBLOCK (or fails to open with ENXIO), seen by fstat and refused at
  once, so no command blocks on it. A write does not truncate before the file
  was checked, and a file with more than one hard link is not written.
- Writes are capped at `file_size_mb`; a listing at MAX_LIST names; output at
  `output_bytes`.
- A path with a NUL byte, an empty or too long path, text that is not valid
  UTF-8: every problem is a failed result with a message, never an exception.
"""

from __future__ import annotations

import errno
import heapq
import os
import posixpath
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

from llmos_grammar.action_policy import ActionPolicy
from llmos_grammar.actions.beneath import open_beneath
from llmos_grammar.results import ActionResult

COMMANDS = ("list", "read", "write", "append")
MAX_LIST = 1000
MAX_PATH = 4095  # bytes, as PATH_MAX less the NUL
MAX_NAME = 255  # bytes in one name


class FilesError(Exception):
    """A command the policy does not allow, a bad path, or a file that cannot be used."""


@dataclass(frozen=True)
class Target:
    """Where a path lands: an allowed folder and the names below it."""

    folder: str
    parts: tuple[str, ...]
    shown: str  # the path as the command wrote it, for messages

    @property
    def path(self) -> str:
        return posixpath.join(self.folder, *self.parts)


def resolve(raw: str, policy: ActionPolicy, writing: bool) -> Target:
    """The allowed folder and names for `raw`, or FilesError when it is bad or outside."""
    roots = policy.write if writing else policy.read + policy.write
    if not roots:
        raise FilesError("the policy allows no folders for this")
    shown = raw.strip()
    _check_text(shown)
    base = _normal((policy.read + policy.write)[0])
    path = _normal(posixpath.join(base, shown))
    matches = [
        (len(form), root, form)
        for root in roots
        for form in {_normal(root), os.path.realpath(root)}
        if path == form or path.startswith(form.rstrip("/") + "/")
    ]
    if not matches:
        kind = "writable" if writing else "readable"
        raise FilesError(f"{shown!r} is {path}, outside the {kind} folders")
    _, root, form = max(matches)  # the deepest folder
    rest = path[len(form) :].strip("/")
    return Target(root, tuple(rest.split("/")) if rest else (), shown)


def _check_text(path: str) -> None:
    if not path:
        raise FilesError("a path is needed")
    if "\0" in path:
        raise FilesError(f"the path {path!r} contains a NUL byte")
    try:
        encoded = os.fsencode(path)
    except UnicodeError:
        raise FilesError(f"the path {path!r} is not valid text") from None
    if len(encoded) > MAX_PATH:
        raise FilesError(f"the path is {len(encoded)} bytes long; the limit is {MAX_PATH}")
    if any(len(name) > MAX_NAME for name in encoded.split(b"/")):
        raise FilesError(f"a name in the path is longer than {MAX_NAME} bytes")


def _normal(path: str) -> str:
    # "//x" stays "//x" under POSIX normpath; one leading slash is enough here
    normal = posixpath.normpath(os.path.abspath(path))
    return "/" + normal.lstrip("/")


def _open(target: Target, flags: int) -> int:
    """An fd for `target`, resolved beneath its folder's fd in one step."""
    try:
        root_fd = os.open(target.folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise FilesError(
            f"the allowed folder {target.folder} cannot be opened: {exc.strerror}"
        ) from None
    try:
        return open_beneath(root_fd, target.parts, flags)
    finally:
        os.close(root_fd)


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def _regular(fd: int, target: Target) -> os.stat_result:
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise FilesError(f"{target.shown!r} is a folder; use `list {target.shown}`")
    if not stat.S_ISREG(info.st_mode):
        raise FilesError(f"{target.shown!r} is {_kind(info.st_mode)}; only regular files are used")
    return info


def _list(target: Target) -> str:
    fd = _open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK)
    seen = [0]
    try:
        lines = heapq.nsmallest(MAX_LIST, _names(fd, seen))
    finally:
        os.close(fd)
    if seen[0] > MAX_LIST:
        lines.append(f"... ({seen[0] - MAX_LIST} more)")
    return "".join(line + "\n" for line in lines)


def _names(fd: int, seen: list[int]) -> Iterator[str]:
    """The names in the folder `fd`, folders with a "/"; `seen[0]` counts them."""
    with os.scandir(fd) as entries:
        for entry in entries:
            seen[0] += 1
            yield entry.name + ("/" if entry.is_dir(follow_symlinks=False) else "")


def _read(target: Target, cap: int) -> tuple[str, bool]:
    fd = _open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        _regular(fd, target)
        data = bytearray()
        while len(data) <= cap:
            chunk = os.read(fd, cap + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data[:cap].decode("utf-8", errors="replace"), len(data) > cap


def _write(target: Target, content: str, policy: ActionPolicy, append: bool) -> str:
    try:
        data = content.encode("utf-8", errors="surrogateescape")
    except UnicodeError:
        raise FilesError("the content is not valid text (it has a lone surrogate)") from None
    cap = policy.file_size_mb * 1024 * 1024
    if len(data) > cap:
        raise FilesError(f"content is {len(data)} bytes, over file_size_mb={policy.file_size_mb}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | (os.O_APPEND if append else 0)
    fd = _open(target, flags)
    try:
        info = _regular(fd, target)
        if info.st_nlink > 1:
            raise FilesError(f"{target.shown!r} has {info.st_nlink} hard links; it is not written")
        if append and info.st_size + len(data) > cap:
            raise FilesError(f"{target.shown!r} would grow past file_size_mb={policy.file_size_mb}")
        if not append:
            os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return f"wrote {len(data)} bytes to {target.path}\n"


def _explain(exc: OSError, arg: str, writing: bool) -> str:
    """A message for a failed open or read: what, where, and what to do."""
    kind = "writable" if writing else "readable"
    if exc.errno == errno.ELOOP:
        return (
            f"{arg!r} goes through a symbolic link; links are not followed, so that no path"
            f" leads outside the {kind} folders (use the real path)"
        )
    if exc.errno == errno.EXDEV:
        return f"{arg!r} leads outside the {kind} folders"
    if exc.errno == errno.ENXIO:
        return (
            f"{arg!r} is a FIFO, socket or device that cannot be opened now;"
            " only regular files are used"
        )
    return f"{exc.strerror or 'error'}: {arg}"


def run_files(text: str, policy: ActionPolicy) -> ActionResult:
    """Run one files command; refusals and errors come back as a failed result."""
    start = time.monotonic()
    head, _, body = text.partition("\n")
    verb, _, arg = head.strip().partition(" ")
    limits = {
        "read": list(policy.read),
        "write": list(policy.write),
        "output_bytes": policy.output_bytes,
    }
    truncated = False
    try:
        if verb == "list":
            out = _list(resolve(arg or ".", policy, writing=False))
        elif verb == "read":
            out, truncated = _read(resolve(arg, policy, writing=False), policy.output_bytes)
        elif verb in ("write", "append"):
            out = _write(resolve(arg, policy, writing=True), body, policy, verb == "append")
        else:
            raise FilesError(f"unknown command {verb!r}; use one of: {', '.join(COMMANDS)}")
    except FilesError as exc:
        return _failed(str(exc), start, limits)
    except OSError as exc:
        return _failed(_explain(exc, arg.strip(), verb in ("write", "append")), start, limits)
    if len(out.encode()) > policy.output_bytes:
        out = out.encode()[: policy.output_bytes].decode("utf-8", errors="ignore")
        truncated = True
    return ActionResult(
        stdout=out,
        truncated=truncated,
        duration_s=round(time.monotonic() - start, 6),
        limits=limits,
    )


def _failed(message: str, start: float, limits: dict[str, object]) -> ActionResult:
    return ActionResult(
        stderr=f"files: {message}\n",
        exit_code=1,
        duration_s=round(time.monotonic() - start, 6),
        limits=limits,
    )
