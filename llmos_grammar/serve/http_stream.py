"""A streamed request as server-sent events: `data: {chunk}` lines, then `data: [DONE]`.

Whatever ends the response (the last chunk, a failure, the client going away, the
server's drain) the ticket is cancelled unless it finished, at once, and the outcome
is reported once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from llmos_grammar.serve.http_chunks import Chunks
from llmos_grammar.serve.http_errors import Failed, InternalError, dumps, error_json
from llmos_grammar.serve.metrics import CLIENT_CLOSED
from llmos_grammar.serve.types import RequestDone, RequestFailed, ServeError, ServeEvent, Ticket

PING_S = 15  # a comment line this often keeps proxies from closing a quiet stream
log = logging.getLogger("llmos.serve")


class TicketStream(EventSourceResponse):
    """Streams one ticket's chunks; `on_close(status)` runs once when the response ends."""

    def __init__(
        self,
        ticket: Ticket,
        events: AsyncIterator[ServeEvent],
        chunks: Chunks,
        on_close: Callable[[int], None],
    ) -> None:
        self.ticket = ticket
        self.outcome = CLIENT_CLOSED  # until the stream reaches an end of its own
        self.on_close = on_close
        super().__init__(self._frames(events, chunks), ping=PING_S, sep="\n")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.outcome != 200:
                self.ticket.cancel()
            self.on_close(self.outcome)

    async def _frames(
        self, events: AsyncIterator[ServeEvent], chunks: Chunks
    ) -> AsyncIterator[ServerSentEvent]:
        try:
            for chunk in chunks.opening():
                yield _data(dumps(chunk))
            async for event in events:
                if isinstance(event, RequestFailed):
                    yield self._failure(Failed(event))
                    return
                if isinstance(event, RequestDone):
                    for chunk in chunks.closing(event.usage):
                        yield _data(dumps(chunk))
                    self.outcome = 200
                    yield _data("[DONE]")
                    return
                for chunk in chunks.event(event):
                    yield _data(dumps(chunk))
            yield self._failure(InternalError("the request ended without a result"))
        except Exception as exc:  # noqa: BLE001 - a stream's last word is an error chunk
            log.error("a streamed response failed", exc_info=exc)
            yield self._failure(InternalError("internal error: the server logged it"))

    def _failure(self, error: ServeError) -> ServerSentEvent:
        """The error chunk that ends a stream (OpenAI's SDKs raise it as an APIError)."""
        self.outcome = error.status
        return _data(dumps(error_json(error)))


def _data(text: str) -> ServerSentEvent:
    return ServerSentEvent(data=text, sep="\n")
