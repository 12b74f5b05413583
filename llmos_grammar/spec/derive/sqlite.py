"""A read-only SELECT grammar typed by the database's actual schema (read when derived)."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass

from llmos_grammar.errors import GrammarError, Location
from llmos_grammar.ir import ActionPolicy, GrammarSource

MAX_TABLES = 64
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEYWORDS = frozenset(
    [
        "select",
        "from",
        "where",
        "group",
        "by",
        "order",
        "limit",
        "join",
        "on",
        "and",
        "or",
        "not",
        "as",
        "asc",
        "desc",
        "like",
        "in",
        "is",
        "null",
        "distinct",
        "having",
        "union",
        "all",
        "case",
        "when",
        "then",
        "else",
        "end",
    ]
)

COMMON = r"""
distinct: "DISTINCT "
limit: " LIMIT " INT
value: NUMBER | STRING
AGG: "COUNT" | "SUM" | "AVG" | "MIN" | "MAX"
DISTINCT_KW: "DISTINCT "
BOOL: " AND " | " OR "
CMP: " = " | " != " | " < " | " > " | " <= " | " >= "
DIR: " ASC" | " DESC"
INT: /[0-9]{1,6}/
NUMBER: /-?[0-9]{1,9}(\.[0-9]{1,4})?/
STRING: /'[^'\n\[]{0,60}'/
"""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    joins: tuple[tuple[str, str, str], ...]  # (column, other table, its column), one per table


def derive(policy: ActionPolicy, where: Location) -> GrammarSource:
    if not policy.database:
        raise GrammarError(f"action {policy.name!r} names no `database`", where)
    tables = read_schema(policy.database, where)
    if not tables:
        raise GrammarError(f"database {policy.database} has no tables", where)
    return GrammarSource("lark", grammar(tables), where, origin=f"policy:{policy.name}")


def read_schema(path: str, where: Location) -> list[Table]:
    """Tables (and views) with their columns and foreign keys, read-only."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = [
                str(r[0])
                for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
                    " AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ][:MAX_TABLES]
            return [_table(db, name, set(names)) for name in names]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise GrammarError(f"cannot read the schema of database {path}: {exc}", where) from None


def _table(db: sqlite3.Connection, name: str, known: set[str]) -> Table:
    quoted = '"' + name.replace('"', '""') + '"'
    columns = tuple(str(r[1]) for r in db.execute(f"PRAGMA table_info({quoted})"))
    joins: dict[str, tuple[str, str, str]] = {}
    for row in db.execute(f"PRAGMA foreign_key_list({quoted})"):
        other, column, target = str(row[2]), str(row[3]), str(row[4] or "rowid")
        if other in known and other != name and other not in joins:
            joins[other] = (column, other, target)
    return Table(name, columns, tuple(joins.values()))


def ident(name: str) -> str:
    """`name` as SQL writes it: bare when plain, else double-quoted."""
    if _PLAIN.fullmatch(name) and name.lower() not in KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    return json.dumps(text)


def grammar(tables: list[Table]) -> str:
    """The Lark grammar: single-table queries over each table's columns, and joins along
    each table's foreign keys; canonical formatting as in examples/sqlite_qa/shop_select.lark."""
    index = {t.name: i for i, t in enumerate(tables)}
    starts = [f"t{i}_q" for i in range(len(tables))]
    lines = ["// derived from the database schema (derive: policy)"]
    for i, table in enumerate(tables):
        lines += _single(i, table)
        if table.joins:
            starts.append(f"j{i}_q")
            lines += _joined(i, table, index)
    return f"start: {' | '.join(starts)}\n" + "\n".join(lines) + "\n" + COMMON


def _single(i: int, table: Table) -> list[str]:
    t, col = f"t{i}", f"T{i}_COL"
    return [
        f'{t}_q: "SELECT " distinct? {t}_items {lit(" FROM " + ident(table.name))} {t}_where?'
        f" {t}_group? {t}_order? limit?",
        f'{t}_items: "*" | {t}_item (", " {t}_item)*',
        f'{t}_item: {col} | AGG "(" ("*" | DISTINCT_KW? {col}) ")" | {col} " * " NUMBER',
        f'{t}_where: " WHERE " {t}_cond (BOOL {t}_cond)*',
        f'{t}_cond: {col} CMP value | {col} " LIKE " STRING',
        f'{t}_group: " GROUP BY " {col}',
        f'{t}_order: " ORDER BY " ({col} | AGG "(" ("*" | {col}) ")") DIR?',
        f"{col}: " + " | ".join(lit(ident(c)) for c in table.columns),
    ]


def _joined(i: int, table: Table, index: dict[str, int]) -> list[str]:
    j, q = f"j{i}", f"J{i}_QCOL"
    names = [f"J{i}_{k}" for k in range(len(table.joins))]
    chains = [" ".join([names[s], *(n + "?" for n in names[s + 1 :])]) for s in range(len(names))]
    me = ident(table.name)
    lines = [
        f'{j}_q: "SELECT " distinct? {j}_items {lit(" FROM " + me)} {j}_joins {j}_where?'
        f" {j}_group? {j}_order? limit?",
        f"{j}_joins: " + " | ".join(chains),
        f'{j}_items: {j}_item (", " {j}_item)*',
        f'{j}_item: {q} | AGG "(" ("*" | DISTINCT_KW? {q} | {q} " * " {q}) ")"',
        f'{j}_where: " WHERE " {j}_cond (BOOL {j}_cond)*',
        f'{j}_cond: {q} CMP value | {q} " LIKE " STRING',
        f'{j}_group: " GROUP BY " {q}',
        f'{j}_order: " ORDER BY " ({q} | AGG "(" ("*" | {q} | {q} " * " {q}) ")") DIR?',
    ]
    qualified = [f"{lit(me + '.')} T{i}_COL"]
    for name, (column, other, target) in zip(names, table.joins, strict=True):
        them = ident(other)
        join = f" JOIN {them} ON {them}.{ident(target)} = {me}.{ident(column)}"
        lines.append(f"{name}: {lit(join)}")
        qualified.append(f"{lit(them + '.')} T{index[other]}_COL")
    lines.append(f"{q}: " + " | ".join(qualified))
    return lines
