"""Hostile SQL: what a model-written query must not achieve against the sandboxed sqlite worker."""

from __future__ import annotations

import os
import re
import sqlite3

from llmos_grammar.results import ActionResult
from tests.hostile.cases import Case, Check, Context, _const, _expect

# The two statements that, run in the runtime process, leaked a libsqlite3 address and
# crashed it with SIGSEGV (the two-argument fts3_tokenizer installs a pointer it is given).
FTS3_LEAK = "SELECT hex(fts3_tokenizer('simple'));"
FTS3_CRASH = (
    "PRAGMA query_only=OFF; SELECT fts3_tokenizer('simple', x'4141414141414141'); "
    "CREATE VIRTUAL TABLE temp.v USING fts3(a, tokenize=simple);"
)
FTS3_CRASH_WRITABLE = (
    "SELECT fts3_tokenizer('simple', x'4141414141414141'); "
    "CREATE VIRTUAL TABLE v USING fts3(a, tokenize=simple); INSERT INTO v VALUES ('x');"
)
# One instr() call is one opcode: the progress handler never runs during it (9 s in-process).
SLOW_INSTR = "SELECT instr(printf('%.*c', 16000000, 'a'), printf('%.*c', 20000, 'a') || 'b');"
ROWS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {n}) "
BIG_CONCAT = ROWS.format(n=200) + "SELECT length(group_concat(randomblob(1000000))) FROM c;"
BIG_SORT = (
    ROWS.format(n=100) + "SELECT count(*) FROM (SELECT randomblob(10000000) FROM c ORDER BY 1);"
)
POINTER = re.compile(r"[0-9A-F]{12,16}")


def _writable(ctx: Context) -> str:
    """A database the sandbox user may write (its own copy in the case's folder)."""
    path = os.path.join(ctx.root, "rw.db")
    if not os.path.exists(path):
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE items (id INTEGER, name TEXT)")
            conn.execute("INSERT INTO items VALUES (1, 'apple')")
        os.chmod(path, 0o666)
    return path


def _schema(path: str) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return [row[0] for row in conn.execute("SELECT sql FROM sqlite_master ORDER BY name")]


def _refused(r: ActionResult, what: str) -> str | None:
    """A plain failed result (no crash, no signal) whose message names the refusal."""
    if r.ok or r.signal is not None or r.exit_code != 1:
        return f"expected a clear error result, got {r.status}"
    return _expect(what in r.stderr, f"the error does not say why: {r.stderr[:200]!r}")


def _no_leak(r: ActionResult, _: Context) -> str | None:
    leaked = POINTER.search(r.stdout)
    return _refused(r, "fts3_tokenizer") or _expect(not leaked, f"address leaked: {r.stdout!r}")


def _writable_unchanged(what: str) -> Check:
    def check(r: ActionResult, ctx: Context) -> str | None:
        schema = _schema(_writable(ctx))
        return _refused(r, what) or _expect(
            schema == ["CREATE TABLE items (id INTEGER, name TEXT)"], f"schema changed: {schema}"
        )

    return check


def _shadow_unchanged(r: ActionResult, ctx: Context) -> str | None:
    with sqlite3.connect(f"file:{_writable(ctx)}?mode=ro", uri=True) as conn:
        forged = conn.execute("SELECT count(*) FROM f_data WHERE id = 99").fetchone()[0]
    return _refused(r, "may not be modified") or _expect(not forged, "a shadow row was written")


def _memory_held(r: ActionResult, _: Context) -> str | None:
    if r.ok or r.signal is not None:
        return f"expected a clean failure, got {r.status}"
    return _expect(
        r.limit_hit == "memory" or "too big" in r.stderr, f"not stopped by memory: {r.status}"
    ) or _expect(r.peak_memory_mb <= 64, f"peak {r.peak_memory_mb} MB over memory_mb 64")


def _timed_out(r: ActionResult, _: Context) -> str | None:
    return _expect(
        r.limit_hit == "timeout" and r.timed_out and r.duration_s < 3.5,
        f"expected a stop at the 2 s wall clock, got {r.status} after {r.duration_s}s",
    )


_RO = {"database": lambda ctx: ctx.database}
_RW = {"database": _writable, "read_only": False}
_FTS3 = "contained: a clear error result, no address in the output, the runtime alive"
CASES: tuple[Case, ...] = (
    Case("sql_fts3_leak", "sqlite", _const(FTS3_LEAK), _no_leak, overrides=_RO, expect=_FTS3),
    Case(
        "sql_fts3_crash",
        "sqlite",
        _const(FTS3_CRASH),
        lambda r, _: _refused(r, "not authorized"),
        overrides=_RO,
        expect=_FTS3,
    ),
    Case(
        "sql_fts3_crash_rw",
        "sqlite",
        _const(FTS3_CRASH_WRITABLE),
        _writable_unchanged("fts3_tokenizer"),
        overrides=_RW,
        expect="contained: fts3_tokenizer refused on a writable database; no table created",
    ),
    Case(
        "sql_slow_instr",
        "sqlite",
        _const(SLOW_INSTR),
        _timed_out,
        overrides={**_RO, "timeout_s": 2.0},
        expect="stopped at ~2 s by the worker's wall clock (limit_hit: timeout)",
    ),
    Case(
        "sql_writable_schema",
        "sqlite",
        _const(
            "PRAGMA writable_schema=ON; "
            "UPDATE sqlite_master SET sql='CREATE TABLE items(x)' WHERE name='items';"
        ),
        _writable_unchanged("writable_schema"),
        overrides=_RW,
        expect="refused: PRAGMA writes are denied; the schema is unchanged",
    ),
    Case(
        "sql_shadow_table_write",
        "sqlite",
        _const("CREATE VIRTUAL TABLE f USING fts5(body); INSERT INTO f_data VALUES (99, x'00');"),
        _shadow_unchanged,
        overrides=_RW,
        expect="refused by SQLITE_DBCONFIG_DEFENSIVE: no write to an fts5 shadow table",
    ),
    Case(
        "sql_load_extension",
        "sqlite",
        lambda ctx: f"SELECT load_extension('{ctx.root}/evil.so');",
        lambda r, _: _refused(r, "load_extension"),
        overrides=_RO,
    ),
    Case(
        "sql_temp_vtable_ro",
        "sqlite",
        _const("CREATE VIRTUAL TABLE temp.v USING fts3(a);"),
        lambda r, _: _refused(r, "read-only"),
        overrides=_RO,
        expect="refused: no schema change on a read-only database, temp included",
    ),
    Case(
        "sql_rtreenode",
        "sqlite",
        _const("SELECT rtreenode(2, x'0000000000000000');"),
        lambda r, _: _refused(r, "rtreenode"),
        overrides=_RO,
    ),
    Case(
        "sql_zeroblob",
        "sqlite",
        _const("SELECT length(zeroblob(1000000000));"),
        _memory_held,
        overrides={**_RO, "memory_mb": 64},
        expect="refused by SQLite's length limit (memory_mb / 4)",
    ),
    Case(
        "sql_big_concat",
        "sqlite",
        _const(BIG_CONCAT),
        _memory_held,
        overrides={**_RO, "memory_mb": 64, "timeout_s": 5.0},
        expect="limit_hit: memory (SQLite's hard heap limit below memory_mb)",
    ),
    Case(
        "sql_big_sort",
        "sqlite",
        _const(BIG_SORT),
        _memory_held,
        overrides={**_RO, "memory_mb": 64, "timeout_s": 5.0},
        expect="limit_hit: memory (SQLite's hard heap limit below memory_mb)",
    ),
)
