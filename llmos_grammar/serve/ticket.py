"""A request's ticket: events pushed by the engine's thread, read by the HTTP layer's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable

from llmos_grammar.serve.types import RequestDone, RequestFailed, ServeEvent


class ServeTicket:
    """One accepted request (implements `types.Ticket`).

    `push` may be called from any thread; `events()` is read on an asyncio loop
    and ends after the `RequestDone` or `RequestFailed`. `cancel()` (any thread,
    any number of times) hands the ticket to `on_cancel`, which frees its rows.
    """

    def __init__(self, on_cancel: Callable[[ServeTicket], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._items: deque[ServeEvent] = deque()
        self._wake: Callable[[], None] | None = None
        self.on_cancel = on_cancel
        self.cancelled = False
        self.finished = threading.Event()  # the last event was pushed

    def push(self, event: ServeEvent) -> None:
        """Queue an event for the reader; events after the last one are dropped."""
        with self._lock:
            if self.finished.is_set():
                return
            self._items.append(event)
            if isinstance(event, RequestDone | RequestFailed):
                self.finished.set()
            wake = self._wake
        if wake is not None:
            wake()

    async def events(self) -> AsyncIterator[ServeEvent]:
        """The request's events in order, the last a RequestDone or a RequestFailed."""
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody reads any more
                loop.call_soon_threadsafe(ready.set)

        with self._lock:
            self._wake = wake
        while True:
            with self._lock:
                item = self._items.popleft() if self._items else None
                if item is None:
                    ready.clear()
            if item is None:
                await ready.wait()
                continue
            yield item
            if isinstance(item, RequestDone | RequestFailed):
                return

    def cancel(self) -> None:
        """The client went away: free the request's rows and kill its running actions."""
        with self._lock:
            first = not self.cancelled and not self.finished.is_set()
            self.cancelled = True
        if first and self.on_cancel is not None:
            self.on_cancel(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the last event was pushed (True) or `timeout` passed (False)."""
        return self.finished.wait(timeout)
