"""Run traces as JSON lines: one header, then every event; read back typed (`read_trace`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from llmos_grammar.errors import Location, TraceError
from llmos_grammar.runtime.event_json import event_from_json, event_to_json
from llmos_grammar.runtime.events import DoneEvent, Event, InjectedEvent, TokenEvent
from llmos_grammar.visible import json_text

# 2: token events may carry a step `detail`, and `healed` events (runs with details).
# 1: what 0.1 and 0.2 wrote; still read.
TRACE_VERSION = 2
READS = (1, 2)


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


def read_trace(path: str | Path) -> Trace:
    """The trace in `path`, its events read by `event_from_json`; traces of every earlier
    release open too. A line that is not a JSON object, a header that is not a trace's, or
    a record that is not an event is a TraceError at its line."""
    where = str(path)
    try:
        numbered = list(_records(Path(path)))
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read the trace: {exc}", Location(where, 1, 1)) from exc
    if not numbered or numbered[0][1].get("kind") != "header":
        raise TraceError("not a trace: no header line first", Location(where, 1, 1))
    first, header = numbered[0]
    version = header.get("llmos_trace")
    if version not in READS:
        readable = ", ".join(map(str, READS))
        raise TraceError(
            f"trace version {version!r}; this reads {readable}", Location(where, first, 1)
        )
    events: list[Event] = []
    times: list[float] = []
    for number, record in numbered[1:]:
        try:
            events.append(event_from_json(record))
        except TraceError as exc:
            raise TraceError(exc.message, Location(where, number, 1)) from exc
        t = record.get("t", 0.0)
        times.append(float(t) if isinstance(t, int | float) else 0.0)
    return Trace(header, tuple(events), tuple(times))


# The typed reader's name before traces had one reader.
read_events = read_trace


def _records(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """Each non-blank line's number and JSON object; TraceError at a line that is not one."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                where = Location(str(path), number, 1)
                raise TraceError("a trace line is not a JSON object (not a trace?)", where)
            yield number, record


def transcript(records: Sequence[Mapping[str, object]]) -> str:
    """The assistant text of JSON event records (`--json` lines, a trace's lines): the last
    `done` result's text, else the token and injected text in order."""
    done = [r.get("result") for r in records if r.get("kind") == "done"]
    if done:
        result = done[-1]
        return str(result.get("text", "")) if isinstance(result, dict) else ""
    parts = [str(r.get("text", "")) for r in records if r.get("kind") in ("token", "injected")]
    return "".join(parts)
