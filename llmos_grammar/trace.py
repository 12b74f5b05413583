"""Run traces as JSON lines: one header, then every event; read them back for replay or training."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from llmos_grammar.errors import LlmosError, Location, TraceError
from llmos_grammar.runtime.event_json import event_from_json, event_to_json
from llmos_grammar.runtime.events import DoneEvent, Event, InjectedEvent, TokenEvent
from llmos_grammar.visible import json_text

TRACE_VERSION = 1


class TraceWriter:
    """Writes a header line and then one JSON line per event, flushed as it goes."""

    def __init__(self, path: str | Path, header: Mapping[str, object] | None = None) -> None:
        self.path = Path(path)
        self._file: IO[str] = self.path.open("w", encoding="utf-8")
        self._t0 = time.perf_counter()
        head = {"kind": "header", "llmos_trace": TRACE_VERSION, **(header or {})}
        self._write(head)

    def write(self, event: Event) -> None:
        record = event_to_json(event)
        record["t"] = round(time.perf_counter() - self._t0, 6)
        self._write(record)

    def _write(self, record: Mapping[str, object]) -> None:
        self._file.write(json_text(record) + "\n")  # safe to print: controls as \uXXXX
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace(path: str | Path) -> list[dict[str, object]]:
    """All records of a trace file (the header first), each a JSON object; LlmosError at
    the first line that is not one."""
    records: list[dict[str, object]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                where = Location(str(path), number, 1)
                raise LlmosError("a trace line is not a JSON object (not a trace?)", where)
            records.append(record)
    return records


def transcript(records: Sequence[Mapping[str, object]]) -> str:
    """The assistant text of a trace: generated, forced and injected text in order."""
    done = [r.get("result") for r in records if r.get("kind") == "done"]
    if done:
        result = done[-1]
        return str(result.get("text", "")) if isinstance(result, dict) else ""
    parts = [str(r.get("text", "")) for r in records if r.get("kind") in ("token", "injected")]
    return "".join(parts)


@dataclass(frozen=True)
class Trace:
    """A trace read back typed: its header, its events (the classes the run yielded) and the
    seconds from the start at which each was written."""

    header: dict[str, object]
    events: tuple[Event, ...]
    times: tuple[float, ...]

    @property
    def transcript(self) -> str:
        """The assistant text: the last DoneEvent's, else the token and injected text."""
        done = [e for e in self.events if isinstance(e, DoneEvent)]
        if done:
            return done[-1].result.text
        return "".join(e.text for e in self.events if isinstance(e, TokenEvent | InjectedEvent))


def read_events(path: str | Path) -> Trace:
    """The trace in `path` with its events read by `event_from_json`; a header that is not
    a trace's, or a record that is not an event, is a TraceError at its line."""
    records = read_trace(path)
    if not records or records[0].get("kind") != "header":
        raise TraceError("not a trace: no header line first", Location(str(path), 1, 1))
    version = records[0].get("llmos_trace")
    if version != TRACE_VERSION:
        raise TraceError(
            f"trace version {version!r}; this reads {TRACE_VERSION}", Location(str(path), 1, 1)
        )
    events: list[Event] = []
    times: list[float] = []
    for number, record in _numbered(path, records[1:]):
        try:
            events.append(event_from_json(record))
        except TraceError as exc:
            raise TraceError(exc.message, Location(str(path), number, 1)) from exc
        t = record.get("t", 0.0)
        times.append(float(t) if isinstance(t, int | float) else 0.0)
    return Trace(records[0], tuple(events), tuple(times))


def _numbered(
    path: str | Path, records: Sequence[dict[str, object]]
) -> list[tuple[int, dict[str, object]]]:
    """The records after the header with the line each came from (blank lines skipped)."""
    lines = [
        n for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1) if line.strip()
    ]
    return list(zip(lines[1:], records, strict=True))
