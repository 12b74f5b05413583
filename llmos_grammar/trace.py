"""Run traces as JSON lines: one header, then every event; read them back for replay or training."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from llmos_grammar.errors import LlmosError, Location
from llmos_grammar.runtime.events import Event, event_to_json
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
