"""Every request counted once by route and status, when its response has ended.

A streamed response starts with 200 and may still fail or lose its client; the route
then writes the real outcome into the request's note, which wins.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOTE = "llmos.note"
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/traces")


@dataclass
class Note:
    """The outcome a route reports over the response's own status (None: that status)."""

    status: int | None = None


def note_of(scope: MutableMapping[str, object]) -> Note:
    note = scope.get(NOTE)
    if not isinstance(note, Note):
        note = scope[NOTE] = Note()
    return note


class Outcomes:
    """ASGI middleware: `record(route, status)` once per HTTP request."""

    def __init__(self, app: ASGIApp, record: Callable[[str, int], None]) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        note = note_of(scope)
        status = 500  # an exception escaped: the outer error middleware answers 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.record(route_label(str(scope.get("path", ""))), note.status or status)


def route_label(path: str) -> str:
    """The path as a label: a known route (a model's page counts as /v1/models), or `other`."""
    if path.startswith("/v1/models/"):
        return "/v1/models"
    if path.startswith("/traces/"):
        return "/traces"
    return path if path in ROUTES else "other"
