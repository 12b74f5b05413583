"""Run traces as JSON lines: one header, then every event; read them back for replay or training."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

from llmos_grammar.runtime.events import Event, event_to_json
from llmos_grammar.visible import json_text

TRACE_VERSION = 1


class TraceWriter:
    """Writes a header line and then one JSON line per event, flushed as it goes."""

    def __init__(self, path: str | Path, header: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._file: IO[str] = self.path.open("w", encoding="utf-8")
        self._t0 = time.perf_counter()
        head = {"kind": "header", "llmos_trace": TRACE_VERSION, **(header or {})}
        self._write(head)

    def write(self, event: Event) -> None:
        record = event_to_json(event)
        record["t"] = round(time.perf_counter() - self._t0, 6)
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json_text(record) + "\n")  # safe to print: controls as \uXXXX
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """All records of a trace file (the header first)."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def transcript(records: list[dict[str, Any]]) -> str:
    """The assistant text of a trace: generated, forced and injected text in order."""
    done = [r for r in records if r.get("kind") == "done"]
    if done:
        return str(done[-1]["result"]["text"])
    parts = [r["text"] for r in records if r.get("kind") in ("token", "injected")]
    return "".join(parts)
