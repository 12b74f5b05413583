"""A session on disk (JSONL): a trace header, then a `user` and a `done` record per turn."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from llmos_grammar.errors import Location, SessionError
from llmos_grammar.ir import Machine
from llmos_grammar.runtime.event_json import event_to_json
from llmos_grammar.runtime.events import DoneEvent, Result


class SavedTurn(Protocol):
    """A turn as a session keeps it (session.Turn)."""

    @property
    def user(self) -> str: ...
    @property
    def reply(self) -> str: ...
    @property
    def result(self) -> Result | None: ...


def write_session(path: str | Path, machine: Machine, turns: Sequence[SavedTurn]) -> None:
    """Write each turn (`user`, `reply`, `result`); a replayed turn's `done` holds its text."""
    header = {"kind": "header", "llmos_trace": 1, "session": True, "spec": machine.path}
    records: list[dict[str, Any]] = [{**header, "spec_key": machine.cache_key}]
    for i, turn in enumerate(turns):
        records.append({"kind": "user", "turn": i, "text": turn.user})
        if turn.result is not None:
            records.append(event_to_json(DoneEvent(turn.result)))
        else:
            records.append({"kind": "done", "result": {"text": turn.reply}})
    lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    Path(path).write_text("".join(lines), encoding="utf-8")


def read_exchanges(path: str | Path) -> list[tuple[str, str]]:
    """The (user text, reply) pairs of a saved session, in order."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read {file}: {exc}") from exc
    exchanges: list[tuple[str, str]] = []
    user: str | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _record(file, number, line)
        kind = record.get("kind")
        if kind == "user":
            user = _text(file, number, record.get("text"))
        elif kind == "done":
            if user is None:
                raise SessionError("a reply without a user turn before it", _at(file, number))
            result = record.get("result")
            reply = _text(file, number, result.get("text") if isinstance(result, dict) else None)
            exchanges.append((user, reply))
            user = None
    return exchanges


def _record(file: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SessionError(f"not JSON: {exc.msg}", _at(file, number, exc.colno)) from exc
    if not isinstance(record, dict):
        raise SessionError("each line must be a JSON object", _at(file, number))
    return record


def _text(file: Path, number: int, value: object) -> str:
    if not isinstance(value, str):
        raise SessionError("expected a `text` string", _at(file, number))
    return value


def _at(file: Path, line: int, column: int = 1) -> Location:
    return Location(str(file), line, column)
