"""Actions in flight, by scope: another thread can kill every sandbox a scope is running now.

A caller that may have to stop its actions early (a served request whose client
went away) runs them inside `running_in(scope)`; each sandboxed child registers
with its thread's scope while it exchanges with the action, and `scope.kill()`
kills those children at once (their exchanges then return as killed). A scope
that was killed kills any child that registers later, so a kill cannot slip in
between two actions of one call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Killable(Protocol):
    def kill(self) -> None: ...


class Scope:
    """The children one caller's actions are running now (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: set[Killable] = set()
        self.killed = False

    def add(self, child: Killable) -> None:
        with self._lock:
            self._children.add(child)
            killed = self.killed
        if killed:
            child.kill()

    def discard(self, child: Killable) -> None:
        with self._lock:
            self._children.discard(child)

    def kill(self) -> None:
        """Kill every child in flight now, and every child that registers from now on."""
        with self._lock:
            self.killed = True
            children = list(self._children)
        for child in children:
            child.kill()


_current = threading.local()


@contextmanager
def running_in(scope: Scope) -> Iterator[None]:
    """Register the sandboxes this thread runs inside the block with `scope`."""
    previous = getattr(_current, "scope", None)
    _current.scope = scope
    try:
        yield
    finally:
        _current.scope = previous


@contextmanager
def registered(child: Killable) -> Iterator[None]:
    """Keep `child` in this thread's scope (if any) while the block runs."""
    scope: Scope | None = getattr(_current, "scope", None)
    if scope is None:
        yield
        return
    scope.add(child)
    try:
        yield
    finally:
        scope.discard(child)
