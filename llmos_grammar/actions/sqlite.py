"""The `sqlite` handler: a query against the policy's database, rendered as a compact table.

This is the part that runs inside the sandboxed worker (`llmos_grammar.actions.worker`),
as uid 65534 with only the database file bound in: the runtime never opens the
database or parses the SQL. A read-only database is opened `mode=ro&immutable=1`
(SQLite itself refuses writes and ignores journals); a writable one `mode=rw`
with its rollback journal in memory, since only the file, not its folder, is
writable. `llmos_grammar.actions.sqlite_guard` sets SQLite's defensive flags
and an authorizer that allows only what the policy allows. SQLite's heap is
capped below `memory_mb` (`PRAGMA hard_heap_limit`; running out is
`limit_hit: memory`), single values by the length limit. A progress handler
stops a statement just before `timeout_s`, so a write is rolled back cleanly;
the worker's wall clock kills what one opcode would hold past it (a long
`instr()`). At most `max_rows` rows are fetched, the table is capped at
`output_bytes`.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse

from llmos_grammar.action_policy import ActionPolicy
from llmos_grammar.actions.sqlite_guard import Guard, harden
from llmos_grammar.results import ActionResult

MIB = 1024 * 1024
RESERVED_MB = 48  # what the interpreter and the worker use next to SQLite's own heap


class SqliteRefused(Exception):
    """The database cannot be used as the policy says (missing, not writable)."""


def heap_limit(policy: ActionPolicy) -> int:
    """SQLite's hard heap limit in bytes: `memory_mb` less what the interpreter needs."""
    return max(8, policy.memory_mb - RESERVED_MB) * MIB


def connect(policy: ActionPolicy) -> tuple[sqlite3.Connection, Guard, bool]:
    """(connection, its authorizer, whether the defensive flags are set) for the policy."""
    path = policy.database
    if not path:
        raise SqliteRefused("the policy names no database")
    if not policy.read_only and os.path.exists(path) and not os.access(path, os.W_OK):
        raise SqliteRefused(
            f"{path} is not writable by the sandbox user (uid {os.getuid()}); "
            "make it writable for that user or set read_only: true"
        )
    query = "mode=ro&immutable=1" if policy.read_only else "mode=rw"
    uri = f"file:{urllib.parse.quote(path)}?{query}"
    conn = sqlite3.connect(
        uri, uri=True, timeout=min(policy.timeout_s, 1.0), check_same_thread=False
    )
    defensive = harden(conn, path)
    conn.execute("PRAGMA trusted_schema = OFF")
    conn.execute(f"PRAGMA hard_heap_limit = {heap_limit(policy)}")
    if policy.read_only:
        conn.execute("PRAGMA query_only = ON")
    else:
        conn.execute("PRAGMA journal_mode = MEMORY")
    guard = Guard(read_only=policy.read_only)
    conn.set_authorizer(guard)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(1024, policy.memory_mb * MIB // 4))
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 1_000_000)
    return conn, guard, defensive


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


def _soft_deadline(policy: ActionPolicy, start: float) -> float:
    """Just before the worker's wall clock, so that SQLite can stop and roll back first."""
    return start + policy.timeout_s - min(0.1, policy.timeout_s / 10)


def run_sqlite(text: str, policy: ActionPolicy) -> ActionResult:
    """Run the statements in `text`; the last one that returns rows is rendered."""
    start = time.monotonic()
    deadline = _soft_deadline(policy, start)
    limits: dict[str, object] = {
        "timeout_s": policy.timeout_s,
        "max_rows": policy.max_rows,
        "read_only": policy.read_only,
    }
    try:
        conn, guard, limits["defensive"] = connect(policy)
    except (sqlite3.Error, SqliteRefused) as exc:
        return ActionResult(exit_code=1, stderr=f"cannot open database: {exc}\n", limits=limits)
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        table, more, _ = _execute(conn, text, policy)
    except MemoryError:
        return _failed(f"sqlite: out of memory (memory_mb={policy.memory_mb})\n", start, limits)
    except sqlite3.Error as exc:
        timed_out = time.monotonic() > deadline and "interrupted" in str(exc)
        message = f"{type(exc).__name__}: {exc}{guard.message()}\n"
        return ActionResult.failure(message, timed_out=timed_out, started=start, limits=limits)
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
        limits=limits,
    )


def _failed(stderr: str, start: float, limits: dict[str, object]) -> ActionResult:
    return ActionResult(
        stderr=stderr,
        exit_code=1,
        limit_hit="memory",
        duration_s=round(time.monotonic() - start, 6),
        limits=limits,
    )
