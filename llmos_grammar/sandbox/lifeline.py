"""Sandboxes die with the runtime: parent-death signals, a spawning thread, and a guard.

Three pieces, one per way a sandbox could outlive a runtime killed with SIGKILL:

- The parent-death signal (armed by the exec helper, `sandbox.spawn`, after
  any uid drop, and followed by a check that the runtime is still the
  parent): the kernel sends SIGKILL to the sandbox's first process when its
  parent dies. That is bwrap (which passes it on with `--die-with-parent`;
  setpriv re-arms it after the uid drop, which clears it), util-linux unshare
  (which passes it to the PID namespace's init with `--kill-child`; the
  namespace ends with its init), or, without namespaces, the program itself.
- `popen`: the kernel sends that signal when the *thread* that forked the
  child exits, not only the process. Children forked by a thread other than
  the main one are therefore forked by one long-lived thread of this module,
  so a sandbox never dies because a worker thread that started it ended.
- `Guard`: without a PID namespace the program's own children (its process
  group, and with cgroups every member of its groups) get no signal, and
  cgroups and temporary folders would stay behind. A guard process, started
  once per runtime (when the first such sandbox starts) from a fresh
  interpreter, holds the read end of a pipe the runtime writes to; when the
  runtime dies the pipe ends (whatever thread was running), and the guard
  kills what it was told about and removes those groups and folders.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _serve() -> None:
    while True:
        job, future = _jobs.get()
        try:
            future.set_result(job())
        except BaseException as exc:  # handed back to the caller
            future.set_exception(exc)


def popen(**kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(**kwargs)`, forked by a thread that lives as long as the process."""
    global _spawner
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(**kwargs)
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_serve, name="llmos-spawn", daemon=True)
            _spawner.start()
    future: Future[subprocess.Popen[bytes]] = Future()
    _jobs.put((lambda: subprocess.Popen(**kwargs), future))
    return future.result()


GUARD = r"""
import os, shutil, signal, sys, time
def members(groups):
    pids = set()
    for group in groups:
        try:
            with open(os.path.join(group, "cgroup.procs")) as fh:
                pids.update(int(p) for p in fh.read().split())
        except OSError:
            pass
    return pids
def end(pgid, kill_group, scratch, groups):
    if kill_group == "1" and pgid:
        try:
            os.killpg(int(pgid), signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 30  # nobody waits on us: take the time it takes
    while groups and time.monotonic() < deadline:
        for pid in members(groups):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for group in list(groups):
            try:
                os.rmdir(group)
                groups.remove(group)
            except FileNotFoundError:
                groups.remove(group)
            except OSError:
                pass
        time.sleep(0.01)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
watched, pgids = {}, {}
for line in sys.stdin:
    op, key, *rest = line.rstrip("\n").split("\t")
    if op == "+":
        watched[key] = rest
    elif op == "=":
        pgids[key] = rest[0]
    else:
        watched.pop(key, None)
        pgids.pop(key, None)
for key, rest in watched.items():
    end(pgids.get(key, ""), rest[0], rest[1], rest[2:])
"""


class Guard:
    """The runtime's guard process: ends watched process groups and cgroups when it dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _start(self) -> int:
        read, write = os.pipe()
        try:
            subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", GUARD],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C reaches the runtime, not the guard
            )
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        return write

    def _send(self, line: str) -> None:
        with self._lock:
            for _ in range(2):  # a guard that was killed is replaced once
                if self._fd is None:
                    self._fd = self._start()
                try:
                    os.write(self._fd, line.encode())
                    return
                except BrokenPipeError:
                    os.close(self._fd)
                    self._fd = None

    def watch(self, key: str, kill_group: bool, scratch: str, groups: list[str]) -> None:
        """Before an action starts: if the runtime dies, kill every member of `groups`
        (and, with `kill_group`, the process group `started` names), then remove those
        groups and the folder `scratch` (unless "")."""
        fields = ["+", key, "1" if kill_group else "0", scratch, *groups]
        self._send("\t".join(fields) + "\n")

    def started(self, key: str, pgid: int) -> None:
        """The action `key` runs, as process group `pgid`."""
        self._send(f"=\t{key}\t{pgid}\n")

    def forget(self, key: str) -> None:
        """The action ended normally: nothing to do for `key` any more."""
        with contextlib.suppress(OSError):
            self._send(f"-\t{key}\n")


GUARD_PROCESS = Guard()
