"""The `sqlite` handler: a query against the policy's database, rendered as a compact table.

Read-only databases are opened read-only by SQLite itself (`mode=ro` URI), not
by inspecting the SQL. ATTACH/DETACH and extension loading are denied by an
authorizer and by a zero attach limit; a progress handler aborts a query past
`timeout_s`; at most `max_rows` rows are fetched and the rendered table is
capped at `output_bytes`. The query runs in-process, so `memory_mb` is bounded
through SQLite's own length limits rather than the kernel (reported as such).
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult

_DENIED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH}
_UNENFORCED = ("memory", "cpu")  # in-process: bounded by length limits and the deadline


def _authorizer(action: int, *_: object) -> int:
    return sqlite3.SQLITE_DENY if action in _DENIED else sqlite3.SQLITE_OK


def connect(policy: ActionPolicy) -> sqlite3.Connection:
    """Open the policy's database, read-only at the SQLite level unless the policy allows writes."""
    if not policy.database:
        raise sqlite3.OperationalError("the policy names no database")
    mode = "ro" if policy.read_only else "rw"
    uri = f"file:{urllib.parse.quote(policy.database)}?mode={mode}"
    conn = sqlite3.connect(
        uri, uri=True, timeout=min(policy.timeout_s, 1.0), check_same_thread=False
    )
    conn.set_authorizer(_authorizer)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(1024, policy.memory_mb * 1024 * 1024 // 4))
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 1_000_000)
    if policy.read_only:
        conn.execute("PRAGMA query_only = ON")
    return conn


def render_table(columns: list[str], rows: list[tuple[object, ...]], more: bool) -> str:
    """A compact pipe-separated table: header line, one line per row, a note when capped."""

    def cell(value: object) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bytes):
            return f"<{len(value)} bytes>"
        return str(value).replace("\n", "\\n").replace("|", "\\|")

    lines = [" | ".join(columns)] if columns else []
    lines += [" | ".join(cell(v) for v in row) for row in rows]
    if more:
        lines.append(f"... (more rows; showing the first {len(rows)})")
    return "\n".join(lines) + ("\n" if lines else "")


def _execute(conn: sqlite3.Connection, text: str, policy: ActionPolicy) -> tuple[str, bool, int]:
    columns: list[str] = []
    rows: list[tuple[object, ...]] = []
    more = False
    changed = 0
    for statement in _statements(text):
        cursor = conn.execute(statement)
        if cursor.description is None:
            changed += max(cursor.rowcount, 0)
            continue
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchmany(policy.max_rows)
        more = cursor.fetchone() is not None
    if not policy.read_only:
        conn.commit()
    if columns:
        return render_table(columns, rows, more), more, changed
    return f"ok ({changed} rows changed)\n", False, changed


def _statements(text: str) -> list[str]:
    """Split on the semicolons that end complete statements (not those inside strings)."""
    parts, current = [], ""
    for piece in text.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            parts.append(current)
            current = ""
    parts.append(current)
    return [p for p in parts if p.strip(" ;\n\t\r")]


def run_sqlite(text: str, policy: ActionPolicy) -> ActionResult:
    """Run the statements in `text`; the last one that returns rows is rendered."""
    start = time.monotonic()
    deadline = start + policy.timeout_s
    limits = {
        "timeout_s": policy.timeout_s,
        "max_rows": policy.max_rows,
        "read_only": policy.read_only,
    }
    try:
        conn = connect(policy)
    except sqlite3.Error as exc:
        return ActionResult(exit_code=1, stderr=f"cannot open database: {exc}\n", limits=limits)
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        table, more, _ = _execute(conn, text, policy)
    except sqlite3.Error as exc:
        timed_out = time.monotonic() > deadline and "interrupted" in str(exc)
        return ActionResult.failure(
            f"{type(exc).__name__}: {exc}\n",
            timed_out=timed_out,
            started=start,
            limits=limits,
            unenforced=_UNENFORCED,
        )
    finally:
        conn.close()
    cap = policy.output_bytes
    data = table.encode()
    truncated = len(data) > cap or more
    shown = data[:cap].decode("utf-8", errors="ignore")
    return ActionResult(
        stdout=shown,
        rows=shown,
        truncated=truncated,
        duration_s=round(time.monotonic() - start, 6),
        unenforced=_UNENFORCED,
        limits=limits,
    )
