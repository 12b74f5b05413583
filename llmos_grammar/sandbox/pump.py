"""Feed a child's stdin and read its stdout/stderr incrementally, capped, until exit or deadline."""

from __future__ import annotations

import contextlib
import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Streams:
    """What was read, how much was dropped, and why the loop stopped."""

    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    info: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    overflow: bool = False  # the output cap was passed: the child was stopped
    timed_out: bool = False
    exited: bool = False
    status: bytearray = field(default_factory=bytearray)  # session: the "action done" line


def pump(
    fds: dict[str, int],
    stdin: bytes,
    pidfd: int,
    cap: int,
    deadline: float,
    kill: Callable[[], None],
    grace_s: float = 0.25,
    result: Streams | None = None,
    keep_stdin: bool = False,
) -> Streams:
    """Run the loop. `fds` maps "out"/"err"/"info"/"status" to read fds, "in" to the write fd.

    Stops the child (via `kill`) when combined output passes `cap` bytes or the
    deadline passes; after the child exits, drains what is left for `grace_s`.
    With a "status" fd (a persistent session), a line there ends the loop.
    """
    result = Streams() if result is None else result
    sel = selectors.DefaultSelector()
    for name in ("out", "err", "info", "status"):
        if name in fds:
            os.set_blocking(fds[name], False)
            sel.register(fds[name], selectors.EVENT_READ, name)
    sel.register(pidfd, selectors.EVENT_READ, "exit")
    pending = memoryview(stdin)
    if "in" in fds:
        if stdin:
            os.set_blocking(fds["in"], False)
            sel.register(fds["in"], selectors.EVENT_WRITE, "in")
        elif not keep_stdin:
            os.close(fds.pop("in"))
    total = 0
    stop_at = deadline
    try:
        while sel.get_map():
            wait = stop_at - time.monotonic()
            if wait <= 0:
                if not result.exited and not result.overflow:
                    result.timed_out = True
                    kill()
                break
            for key, _ in sel.select(wait):
                name = key.data
                if name == "exit":
                    sel.unregister(pidfd)
                    result.exited = True
                    kill()  # leftovers (daemons) must not outlive the action
                    stop_at = min(stop_at, time.monotonic() + grace_s)
                elif name == "in":
                    try:
                        sent = os.write(key.fd, pending[:65536])
                        pending = pending[sent:]
                    except (BrokenPipeError, BlockingIOError) as exc:
                        if isinstance(exc, BlockingIOError):
                            continue
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(key.fd)
                        if not keep_stdin:
                            os.close(fds.pop("in"))
                else:
                    try:
                        chunk = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(key.fd)
                        continue
                    if name == "info":
                        result.info += chunk[:4096]
                        continue
                    if name == "status":
                        result.status += chunk[:64]
                        if b"\n" in result.status:
                            _drain(fds, result, cap - total)
                            return result
                        continue
                    room = max(0, cap - total)
                    buf = result.out if name == "out" else result.err
                    buf += chunk[:room]
                    total += len(chunk)
                    if total > cap and not result.overflow:
                        result.truncated = result.overflow = True
                        kill()
                        stop_at = min(stop_at, time.monotonic() + grace_s)
    finally:
        for key in list(sel.get_map().values()):
            if key.data == "in" and not keep_stdin and "in" in fds:
                with contextlib.suppress(OSError):
                    os.close(fds.pop("in"))
        sel.close()
    return result


def _drain(fds: dict[str, int], result: Streams, room: int) -> None:
    """Read what is already in the out/err pipes without waiting."""
    for name in ("out", "err"):
        buf = result.out if name == "out" else result.err
        while name in fds:
            try:
                chunk = os.read(fds[name], 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            buf += chunk[: max(0, room)]
            if len(chunk) > room:
                result.truncated = True
            room -= len(chunk)
