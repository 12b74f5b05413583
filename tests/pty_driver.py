"""A command on a pseudo-terminal for tests: type lines and keys, wait for text (stdlib pty)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import termios
import time
from collections.abc import Sequence
from pathlib import Path


class Terminal:
    """`cmd` with a pseudo-terminal as stdin, stdout and stderr."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], cwd: str | None = None) -> None:
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            list(cmd),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self.fd = master
        self.seen = ""  # everything the terminal showed
        self.mark = 0  # where the next `expect` starts looking

    def send(self, data: str | bytes) -> None:
        os.write(self.fd, data.encode() if isinstance(data, str) else data)

    def line(self, text: str) -> None:
        self.send(text + "\r")

    def key(self, char: str) -> None:
        """A control key as the terminal sends it: "c" -> Ctrl-C, "d" -> Ctrl-D."""
        self.send(bytes([ord(char.lower()) - ord("a") + 1]))

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the other end closed
            return False
        if not data:
            return False
        self.seen += data.decode("utf-8", "replace")
        return True

    def expect(self, text: str, timeout: float = 120) -> str:
        """Wait until `text` shows after the previous match; return what came up to its end."""
        end = time.monotonic() + timeout
        while True:
            at = self.seen.find(text, self.mark)
            if at >= 0:
                out = self.seen[self.mark : at + len(text)]
                self.mark = at + len(text)
                return out
            left = end - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)) and self.proc.poll() is not None:
                raise AssertionError(f"{text!r} did not show; the terminal shows:\n{self.seen}")

    def wait(self, timeout: float = 60) -> int:
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            self._read(0.2)
        return self.proc.wait(timeout=1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.fd)


def _controlling_terminal() -> None:
    """In the child, after setsid: make the pty its terminal, so Ctrl-C sends SIGINT."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (from /proc's children lists)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                found.append(kid)
                todo.append(kid)
    return found
