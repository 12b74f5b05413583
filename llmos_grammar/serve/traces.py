"""The last N request traces of `llmos serve --traces N`: kept as JSONL, bounded by count and bytes.

Each choice of a request is one trace, the same `Trace` that `llmos-run --trace` writes
(a header line, then one line per event with its time), kept under a random id. The
store is shared by the engines' threads, which put finished traces, and the HTTP
routes, which read them: a lock guards it. The oldest traces leave first, when more
than `keep` are held or their bytes pass `max_bytes`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from llmos_grammar.errors import TraceError
from llmos_grammar.runtime.event_json import event_from_json, event_to_json
from llmos_grammar.runtime.events import Event
from llmos_grammar.trace import Trace
from llmos_grammar.visible import json_text

DEFAULT_BYTES = 64 * 1024 * 1024
TRACE_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # what new_id makes: 16 random bytes, base64url


def new_id() -> str:
    """A trace id nobody can guess: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class KeptTrace:
    """One choice's trace as JSONL, with what the index page lists of it."""

    id: str
    model: str  # the served model the request named (a spec's name, or the base model)
    choice: int
    created: float  # time.time() when the choice's row started
    status: str  # the finish reason, or how the request failed
    task: str  # the request's last user message (or raw prompt): untrusted
    jsonl: bytes

    @property
    def size(self) -> int:
        return len(self.jsonl)

    def trace(self) -> Trace:
        """The typed trace read back, as `read_trace` reads a `--trace` file."""
        return trace_from_jsonl(self.jsonl)


class TraceStore:
    """The last `keep` traces, within `max_bytes` (see the module docstring); `details`:
    whether the runs it records keep each step's details (`--traces-details`)."""

    def __init__(self, keep: int, max_bytes: int = DEFAULT_BYTES, details: bool = False) -> None:
        if keep < 1 or max_bytes < 1:
            raise ValueError(f"a trace store keeps at least one trace (got {keep}, {max_bytes})")
        self.keep = keep
        self.max_bytes = max_bytes
        self.details = details
        self._lock = threading.Lock()
        self._traces: OrderedDict[str, KeptTrace] = OrderedDict()
        self._bytes = 0

    def put(self, kept: KeptTrace) -> bool:
        """Keep `kept`, evicting the oldest; False (nothing kept) when it alone is larger
        than the whole budget."""
        if kept.size > self.max_bytes:
            return False
        with self._lock:
            old = self._traces.pop(kept.id, None)
            if old is not None:
                self._bytes -= old.size
            self._traces[kept.id] = kept
            self._bytes += kept.size
            while len(self._traces) > self.keep or self._bytes > self.max_bytes:
                _, gone = self._traces.popitem(last=False)
                self._bytes -= gone.size
        return True

    def get(self, trace_id: str) -> KeptTrace | None:
        """The trace kept under `trace_id`, or None (never kept, or evicted)."""
        if not TRACE_ID.fullmatch(trace_id):
            return None
        with self._lock:
            return self._traces.get(trace_id)

    def listed(self) -> list[KeptTrace]:
        """Every kept trace, the newest first."""
        with self._lock:
            return list(reversed(self._traces.values()))

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._traces)


def trace_jsonl(trace: Trace) -> bytes:
    """`trace` as the lines `TraceWriter` writes: the header, then each event with its `t`."""
    lines = [json_text(trace.header)]
    for event, t in zip(trace.events, trace.times, strict=True):
        record = event_to_json(event)
        record["t"] = t
        lines.append(json_text(record))
    return ("\n".join(lines) + "\n").encode("utf-8")


def trace_from_jsonl(data: bytes) -> Trace:
    """The Trace of lines `trace_jsonl` wrote; TraceError where a line is not one."""
    lines = [line for line in data.decode("utf-8").split("\n") if line.strip()]
    if not lines:
        raise TraceError("an empty trace")
    header = _object(lines[0])
    events: list[Event] = []
    times: list[float] = []
    for line in lines[1:]:
        record = _object(line)
        events.append(event_from_json(record))
        t = record.get("t", 0.0)
        times.append(float(t) if isinstance(t, int | float) else 0.0)
    return Trace(header, tuple(events), tuple(times))


def _object(line: str) -> dict[str, object]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise TraceError("a trace line is not a JSON object")
    return value
