"""The `files` handler: list, read and (when allowed) write inside the policy's folders.

Command language (one command per action; the first line is the command):

    list DIR            names in DIR, one per line, folders end with "/"
    read PATH           the text of PATH (at most `output_bytes`)
    write PATH          the lines after the first are the new content of PATH
    <content...>
    append PATH         like write, added at the end
    <content...>

PATH is absolute or relative to the first allowed folder. Every path is
resolved (symlinks and "..") before it is checked against `read` (for list and
read; `write` folders are readable too) or `write`; the final component is
opened with O_NOFOLLOW. Writes are capped at `file_size_mb`.
"""

from __future__ import annotations

import os
import stat
import time

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult

COMMANDS = ("list", "read", "write", "append")
MAX_LIST = 1000


class FilesError(Exception):
    """A command the policy does not allow, or a path outside the allowed folders."""


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    for root in roots:
        real_root = os.path.realpath(root)
        if path == real_root or path.startswith(real_root.rstrip("/") + "/"):
            return True
    return False


def resolve(raw: str, policy: ActionPolicy, writing: bool) -> str:
    """The real path for `raw`, or FilesError when it lands outside the allowed folders."""
    roots = policy.write if writing else policy.read + policy.write
    if not roots:
        raise FilesError("the policy allows no folders for this")
    raw = raw.strip()
    if not raw:
        raise FilesError("a path is needed")
    base = os.path.realpath((policy.read + policy.write)[0])
    real = os.path.realpath(os.path.join(base, raw))
    if not _inside(real, roots):
        kind = "writable" if writing else "readable"
        raise FilesError(f"{raw!r} resolves to {real}, outside the {kind} folders")
    return real


def _list(path: str) -> str:
    entries = sorted(os.scandir(path), key=lambda e: e.name)
    lines = [e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in entries[:MAX_LIST]]
    if len(entries) > MAX_LIST:
        lines.append(f"... ({len(entries) - MAX_LIST} more)")
    return "\n".join(lines) + ("\n" if lines else "")


def _read(path: str, cap: int) -> tuple[str, bool]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FilesError(f"{path} is not a regular file")
        data = os.read(fd, cap + 1)
    finally:
        os.close(fd)
    return data[:cap].decode("utf-8", errors="replace"), len(data) > cap


def _write(path: str, content: str, policy: ActionPolicy, append: bool) -> str:
    data = content.encode()
    if len(data) > policy.file_size_mb * 1024 * 1024:
        raise FilesError(f"content is {len(data)} bytes, over file_size_mb={policy.file_size_mb}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        if append and os.fstat(fd).st_size + len(data) > policy.file_size_mb * 1024 * 1024:
            raise FilesError(f"{path} would grow past file_size_mb={policy.file_size_mb}")
        os.write(fd, data)
    finally:
        os.close(fd)
    return f"wrote {len(data)} bytes to {path}\n"


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
    except (FilesError, OSError) as exc:
        message = (
            f"{exc.strerror}: {arg}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        )
        return ActionResult(stderr=f"files: {message}\n", exit_code=1, limits=limits)
    if len(out.encode()) > policy.output_bytes:
        out = out.encode()[: policy.output_bytes].decode("utf-8", errors="ignore")
        truncated = True
    return ActionResult(
        stdout=out,
        truncated=truncated,
        duration_s=round(time.monotonic() - start, 6),
        limits=limits,
    )
