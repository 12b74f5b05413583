"""Kept rows: finished turns left in the engine's cache, and the ids each reply was made of.

`KeptRows` holds one engine's finished rows (their exact ids: prompt, sampled,
forced and injected) for `ttl_s` seconds of idleness, least recently used first
out once their cache passes a byte budget. A request whose prompt ids start
with most of a kept row's takes that row over instead of prefilling. Only the
engine's thread touches it. `Replies` maps a reply (its text and tool calls,
after exactly which ids) to the ids that produced it, so that a client sending
the reply back renders to the row's own ids (render.py); it is shared by
threads and bounded by the ids it holds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmos_grammar.engines import Engine, MeasuresCache
from llmos_grammar.results import Runner
from llmos_grammar.runtime.kv import KVSequence
from llmos_grammar.serve.render import Continuation, digest
from llmos_grammar.serve.types import Message

DEFAULT_BYTES = 1 << 30  # the cache kept rows may hold on an engine that measures it
DEFAULT_ROWS = 48  # rows kept at most (an engine may hold fewer: see KeptRows.evict_one)
MIN_REUSE = 16  # fewer common ids are not worth taking a kept row over


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class KeptRow:
    """A finished row left in the cache: its ids, who ran it, the state of its actions."""

    seq: KVSequence
    served: str  # the served model whose request ran it
    runner: Runner | None = None  # its actions' state (a persistent interpreter), if any
    used: float = field(default_factory=time.monotonic)
    size: int = 0  # bytes of cache its cached ids hold (set when kept)

    def close(self) -> None:
        self.seq.close()
        if self.runner is not None:
            self.runner.close()


class KeptRows:
    """One engine's kept rows (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl_s: float,
        max_bytes: int = DEFAULT_BYTES,
        max_rows: int = DEFAULT_ROWS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_rows = max_rows
        self.clock = clock
        self.per_id = engine.cache_bytes_per_id() if isinstance(engine, MeasuresCache) else 0
        capacity = engine.cache_capacity() if isinstance(engine, MeasuresCache) else None
        self.capacity = capacity  # ids the engine's rows hold together (None: no bound)
        # an engine whose cells all rows share keeps half of them for running rows
        self.max_bytes = (
            max_bytes if capacity is None else min(max_bytes, capacity // 2 * self.per_id)
        )
        self.rows: list[KeptRow] = []  # least recently used first
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def bytes(self) -> int:
        """The cache the kept rows hold (0 on an engine that does not measure it); safe to
        read from any thread."""
        return sum(row.size for row in list(self.rows))

    def make_room(self, running: int, need: int) -> None:
        """Evict the least recently used rows until `need` more ids fit beside `running` ids
        of running rows (on an engine whose rows share a bounded cache)."""
        if self.capacity is None:
            return
        while self.rows and running + sum(r.seq.cached for r in self.rows) + need > self.capacity:
            self.evict_one()

    def put(self, row: KeptRow) -> None:
        """Keep a finished row (most recently used), then evict past the budgets."""
        row.used = self.clock()
        row.size = row.seq.cached * self.per_id
        self.rows.append(row)
        while len(self.rows) > self.max_rows or (self.per_id and self.bytes > self.max_bytes):
            self.evict_one()

    def best(self, ids: Sequence[int]) -> tuple[KeptRow, int] | None:
        """The kept row sharing the most leading ids with `ids` (at least MIN_REUSE), and how
        many it shares."""
        found: tuple[KeptRow, int] | None = None
        for row in self.rows:
            shared = common_prefix(row.seq.ids, ids)
            if shared >= MIN_REUSE and (found is None or shared > found[1]):
                found = (row, shared)
        return found

    def take(self, row: KeptRow) -> None:
        """A request takes the row over: it is no longer kept."""
        self.rows.remove(row)

    def touch(self, row: KeptRow) -> None:
        """The row was used (copied from): it goes to the back of the eviction order."""
        self.rows.remove(row)
        row.used = self.clock()
        self.rows.append(row)

    def expire(self) -> int:
        """Evict rows idle longer than the TTL; returns how many."""
        now = self.clock()
        old = [row for row in self.rows if now - row.used > self.ttl_s]
        for row in old:
            self._evict(row)
        return len(old)

    def next_expiry(self) -> float | None:
        """Seconds until the next row's TTL runs out (None: nothing kept)."""
        if not self.rows:
            return None
        return max(0.0, self.rows[0].used + self.ttl_s - self.clock())

    def evict_one(self) -> bool:
        """Evict the least recently used row (the engine needs the room); False if none."""
        if not self.rows:
            return False
        self._evict(self.rows[0])
        return True

    def _evict(self, row: KeptRow) -> None:
        self.rows.remove(row)
        self.evicted += 1
        row.close()

    def close(self) -> None:
        while self.rows:
            self._evict(self.rows[0])


ReplyKey = tuple[str, bytes, str, tuple[tuple[str, str], ...]]


class Replies:
    """The ids each reply was produced as, by (served model, the ids before it, its text and
    tool calls); at most `max_ids` ids, least recently used out first. Thread-safe."""

    def __init__(self, max_ids: int = 4_000_000) -> None:
        self.max_ids = max_ids
        self._lock = threading.Lock()
        self._map: OrderedDict[ReplyKey, Continuation] = OrderedDict()
        self._ids = 0

    @staticmethod
    def key(served: str, before: Sequence[int], message: Message) -> ReplyKey:
        calls = tuple((c.name, c.arguments) for c in message.tool_calls)
        return (served, digest(before), message.content, calls)

    def put(self, served: str, before: Sequence[int], message: Message, how: Continuation) -> None:
        key = self.key(served, before, message)
        with self._lock:
            old = self._map.pop(key, None)
            self._ids += len(how.ids) - (len(old.ids) if old is not None else 0)
            self._map[key] = how
            while self._ids > self.max_ids and self._map:
                _, dropped = self._map.popitem(last=False)
                self._ids -= len(dropped.ids)

    def get(self, served: str, before: Sequence[int], message: Message) -> Continuation | None:
        key = self.key(served, before, message)
        with self._lock:
            how = self._map.get(key)
            if how is not None:
                self._map.move_to_end(key)
            return how

    def known(self, served: str) -> Callable[[Sequence[int], Message], Continuation | None]:
        """`render_chat`'s `known` for one served model."""
        return lambda before, message: self.get(served, before, message)
