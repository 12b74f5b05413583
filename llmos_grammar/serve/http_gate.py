"""The requests in flight, so a drain can refuse new ones, wait for these, then stop the rest.

A stopped request ends as if it had failed with 503: a streamed one gets an error chunk
and a clean end, a plain one a 503 answer; its ticket is cancelled (actions killed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from llmos_grammar.serve.types import Draining, RequestFailed, ServeEvent, Ticket

STOPPED = RequestFailed(503, "the server shut down before the request finished", code="shutdown")


class Gate:
    """Open until a drain starts; tracks every accepted ticket until its response ends."""

    def __init__(self) -> None:
        self.draining = False
        self._tickets: dict[int, tuple[Ticket, asyncio.Event]] = {}  # by id(): need not hash

    def refuse_if_draining(self) -> None:
        if self.draining:
            raise Draining(
                "the server is shutting down and takes no new requests: retry on another server",
                code="draining",
            )

    def add(self, ticket: Ticket) -> None:
        self._tickets[id(ticket)] = (ticket, asyncio.Event())

    def discard(self, ticket: Ticket) -> None:
        self._tickets.pop(id(ticket), None)

    @property
    def running(self) -> int:
        return len(self._tickets)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Whether every tracked request ended within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self._tickets and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return not self._tickets

    def stop_all(self) -> int:
        """Stop every request still running and cancel its ticket; how many there were."""
        running = list(self._tickets.values())
        for ticket, stop in running:
            stop.set()
            ticket.cancel()
        return len(running)

    async def guard(
        self, ticket: Ticket, events: AsyncIterator[ServeEvent]
    ) -> AsyncIterator[ServeEvent]:
        """`events`, ending with STOPPED as soon as the request is stopped."""
        entry = self._tickets.get(id(ticket))
        if entry is None:
            raise KeyError("guard a ticket after add")
        stopping = asyncio.ensure_future(entry[1].wait())
        iterator = aiter(events)
        try:
            while True:
                step = asyncio.ensure_future(anext(iterator))
                await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    step.cancel()
                    yield STOPPED
                    return
                try:
                    event = step.result()
                except StopAsyncIteration:
                    return
                yield event
        finally:
            stopping.cancel()
