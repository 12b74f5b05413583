"""Explicit sessions: conversations the server holds, so a client sends only its new messages.

A request naming a session continues it: its messages come after the session's,
and the reply joins them. One request at a time per session (a second one while
the first runs is refused); a session idle longer than its TTL is forgotten
(its rows' cache is kept rows like any other: it costs a re-prefill at most).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from llmos_grammar.serve.types import BadRequest, Message

MAX_SESSIONS = 4096


@dataclass
class _Session:
    model: str
    messages: tuple[Message, ...] = ()
    busy: bool = False
    used: float = field(default_factory=time.monotonic)


class Sessions:
    """The held conversations, by id (thread-safe)."""

    def __init__(self, ttl_s: float, max_sessions: int = MAX_SESSIONS) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._held: OrderedDict[str, _Session] = OrderedDict()

    def begin(self, session: str, model: str) -> tuple[Message, ...]:
        """The session's messages so far (none for a new one); it is busy until `end`."""
        with self._lock:
            self._expire()
            held = self._held.get(session)
            if held is None:
                held = self._held[session] = _Session(model)
                while len(self._held) > self.max_sessions:
                    self._held.popitem(last=False)
            if held.model != model:
                raise BadRequest(
                    f"session {session!r} is a conversation with model {held.model!r}: "
                    "name that model, or start another session",
                    param="session",
                )
            if held.busy:
                raise BadRequest(
                    f"session {session!r} is answering another request: wait for its reply",
                    param="session",
                    code="session_busy",
                )
            held.busy = True
            self._held.move_to_end(session)
            return held.messages

    def end(self, session: str, messages: tuple[Message, ...] | None) -> None:
        """The request is over: the conversation is now `messages` (None: unchanged)."""
        with self._lock:
            held = self._held.get(session)
            if held is None:
                return
            held.busy = False
            held.used = time.monotonic()
            if messages is not None:
                held.messages = messages

    def __len__(self) -> int:
        return len(self._held)

    def _expire(self) -> None:
        now = time.monotonic()
        for name in [n for n, s in self._held.items() if not s.busy and now - s.used > self.ttl_s]:
            del self._held[name]
