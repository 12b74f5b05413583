"""Trigger detection over a text state's bytes, including triggers split across tokens."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

MIN_PREFIX = 2  # bytes of a trigger the model must emit before the rest is forced


@dataclass(frozen=True)
class Hit:
    """A trigger found at byte `start`; `matched` bytes of it were emitted by the model."""

    trigger: bytes
    start: int
    matched: int

    @property
    def complete(self) -> bool:
        return self.matched == len(self.trigger)


def find(text: bytes | bytearray, triggers: list[str], new_bytes: int) -> Hit | None:
    """The first trigger the last `new_bytes` bytes completed, or an unambiguous started one.

    A started trigger counts when its emitted prefix ends the text, is at least
    MIN_PREFIX bytes long (or the whole trigger is shorter) and no other trigger
    shares that prefix; the caller then forces the rest.
    """
    encoded = [t.encode() for t in triggers if t]
    best: Hit | None = None
    for trigger in encoded:
        lo = max(0, len(text) - new_bytes - len(trigger) + 1)
        at = bytes(text).find(trigger, lo)
        if at >= 0 and (best is None or at < best.start):
            best = Hit(trigger, at, len(trigger))
    if best is not None:
        return best
    return _started(bytes(text), encoded)


def _started(text: bytes, encoded: list[bytes]) -> Hit | None:
    longest = max((len(t) for t in encoded), default=0)
    for size in range(min(longest - 1, len(text)), MIN_PREFIX - 1, -1):
        suffix = text[len(text) - size :]
        matching = [t for t in encoded if len(t) > size and t.startswith(suffix)]
        if len(matching) == 1:
            return Hit(matching[0], len(text) - size, size)
        if matching:
            return None
    return None


def token_at(offsets: list[int], position: int) -> int:
    """Index of the token whose bytes contain `position`, given each token's start offset."""
    return max(0, bisect.bisect_right(offsets, position) - 1)


def stop_strings(triggers: list[str], started: bool, before: bytes = b"") -> tuple[str, ...]:
    """Strings that end a segment wherever `find` could fire: every trigger and, when
    `started` triggers count, each of their prefixes of at least MIN_PREFIX bytes; and the
    rest of each trigger that `before` (the state's text so far) ends with the start of.

    A segment engine stops at the first of them; the replay of the segment's
    tokens then decides with `find`, so a stop that does not fire costs one more
    request, never a different result. A string that contains another one is
    left out (the shorter stops first): servers cap how many they take.
    """
    out: set[str] = set()
    for trigger in triggers:
        if not trigger:
            continue
        out.add(trigger)
        for end in range(1, len(trigger)):
            head = trigger[:end]
            if started and len(head.encode()) >= MIN_PREFIX:
                out.add(head)
            if before.endswith(head.encode()):
                out.add(trigger[end:])
    return tuple(sorted(s for s in out if not any(t != s and t in s for t in out)))
