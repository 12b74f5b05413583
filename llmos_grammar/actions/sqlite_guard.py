"""What model-written SQL may do on a connection: an authorizer, and SQLite's defensive flags.

The authorizer (`Guard`) allows only what the policy allows: reading always;
writing data and schema only with `read_only: false`; never ATTACH/DETACH (and
so never `VACUUM`), never a PRAGMA that sets a value, and never the functions
in `DENIED_FUNCTIONS` (`fts3_tokenizer` returns or takes a raw C pointer;
`load_extension` runs native code; the rtree debug functions parse blobs).
Every denial is remembered, so the error the model sees says what was refused.

`harden(conn)` sets SQLITE_DBCONFIG_DEFENSIVE (no writes to shadow tables,
`sqlite_dbpage` or a writable schema), turns the two-argument
`fts3_tokenizer` and extension loading off and marks the schema untrusted.
Python 3.12 has `Connection.setconfig`; on 3.11 the flags are set by calling
`sqlite3_db_config` through ctypes on the library this interpreter's
`_sqlite3` already loaded, with the connection's `sqlite3 *` read from the
CPython object (the first field after the object header) and checked by
asking SQLite for the database's file name before anything is set. Where
that is not possible `harden` returns False and the authorizer alone stands.
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
import sys
from dataclasses import dataclass, field

DENIED_FUNCTIONS = frozenset(
    {"fts3_tokenizer", "load_extension", "rtreenode", "rtreedepth", "readfile", "writefile"}
)
# PRAGMAs that take a table or index name and only report on it.
PRAGMA_QUERIES = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    }
)
# PRAGMAs allowed only in their reading form (no value).
PRAGMA_READS = frozenset(
    {
        "application_id",
        "collation_list",
        "compile_options",
        "data_version",
        "database_list",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "journal_mode",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "query_only",
        "schema_version",
        "user_version",
    }
)
_S = sqlite3
READS = frozenset(
    {_S.SQLITE_SELECT, _S.SQLITE_READ, _S.SQLITE_RECURSIVE, _S.SQLITE_TRANSACTION}
    | {_S.SQLITE_SAVEPOINT}
)
WRITES = frozenset(
    {
        _S.SQLITE_INSERT,
        _S.SQLITE_UPDATE,
        _S.SQLITE_DELETE,
        _S.SQLITE_CREATE_TABLE,
        _S.SQLITE_CREATE_INDEX,
        _S.SQLITE_CREATE_VIEW,
        _S.SQLITE_CREATE_TRIGGER,
        _S.SQLITE_CREATE_TEMP_TABLE,
        _S.SQLITE_CREATE_TEMP_INDEX,
        _S.SQLITE_CREATE_TEMP_VIEW,
        _S.SQLITE_CREATE_TEMP_TRIGGER,
        _S.SQLITE_CREATE_VTABLE,
        _S.SQLITE_DROP_TABLE,
        _S.SQLITE_DROP_INDEX,
        _S.SQLITE_DROP_VIEW,
        _S.SQLITE_DROP_TRIGGER,
        _S.SQLITE_DROP_TEMP_TABLE,
        _S.SQLITE_DROP_TEMP_INDEX,
        _S.SQLITE_DROP_TEMP_VIEW,
        _S.SQLITE_DROP_TEMP_TRIGGER,
        _S.SQLITE_DROP_VTABLE,
        _S.SQLITE_ALTER_TABLE,
        _S.SQLITE_REINDEX,
        _S.SQLITE_ANALYZE,
    }
)
# Declaring an eponymous virtual table (json_each, pragma_table_info) asks to update the
# schema table; on a read-only connection nothing can be written, so that is allowed.
SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master"})

# sqlite3.h
DBCONFIG_ENABLE_FTS3_TOKENIZER = 1004
DBCONFIG_ENABLE_LOAD_EXTENSION = 1005
DBCONFIG_DEFENSIVE = 1010
DBCONFIG_TRUSTED_SCHEMA = 1017
FLAGS = (
    (DBCONFIG_DEFENSIVE, 1),
    (DBCONFIG_ENABLE_FTS3_TOKENIZER, 0),
    (DBCONFIG_ENABLE_LOAD_EXTENSION, 0),
    (DBCONFIG_TRUSTED_SCHEMA, 0),
)


@dataclass
class Guard:
    """The authorizer of one connection; `denied` lists what it refused, in order."""

    read_only: bool
    denied: list[str] = field(default_factory=list)

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, _: str | None
    ) -> int:
        reason = self._why_not(action, arg1, arg2)
        if reason is None:
            return sqlite3.SQLITE_OK
        self.denied.append(reason)
        return sqlite3.SQLITE_DENY

    def _why_not(self, action: int, arg1: str | None, arg2: str | None) -> str | None:
        if action in READS:
            return None
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            return f"the function {name}() is not allowed" if name in DENIED_FUNCTIONS else None
        if action == sqlite3.SQLITE_PRAGMA:
            return _pragma(arg1 or "", arg2)
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return "ATTACH, DETACH and VACUUM are not allowed"
        if action in WRITES and not self.read_only:
            return None
        if action == sqlite3.SQLITE_UPDATE and arg1 in SCHEMA_TABLES:
            return None
        if action in WRITES:
            return "the database is read-only for this action (policy: read_only: true)"
        return f"operation {action} is not allowed"

    def message(self) -> str:
        """Why the last statement was refused, for the error the model sees ("" if nothing)."""
        return f" ({self.denied[-1]})" if self.denied else ""


def _pragma(name: str, value: str | None) -> str | None:
    name = name.lower()
    if name in PRAGMA_QUERIES or (value is None and name in PRAGMA_READS):
        return None
    if value is not None and name in PRAGMA_READS:
        return f"PRAGMA {name} may be read, not set"
    return f"PRAGMA {name} is not allowed"


def harden(conn: sqlite3.Connection, path: str) -> bool:
    """Set SQLite's defensive flags on `conn` (opened on `path`); False where impossible."""
    setconfig = getattr(conn, "setconfig", None)
    if setconfig is not None:  # Python 3.12+
        for op, value in FLAGS:
            setconfig(op, bool(value))
        return True
    handle = _db_handle(conn, path)
    if handle is None:
        return False
    lib, db = handle
    for op, value in FLAGS:
        out = ctypes.c_int(-1)
        if lib.sqlite3_db_config(db, ctypes.c_int(op), ctypes.c_int(value), ctypes.byref(out)):
            return False
        if out.value != value:
            return False
    return True


def _db_handle(conn: sqlite3.Connection, path: str) -> tuple[ctypes.CDLL, ctypes.c_void_p] | None:
    """(the loaded libsqlite3, the connection's `sqlite3 *`), checked; None when unsure."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        return None
    library = _loaded_library()
    if library is None:
        return None
    lib = ctypes.CDLL(library)  # already loaded by _sqlite3: the same copy of SQLite
    lib.sqlite3_libversion.restype = ctypes.c_char_p
    if lib.sqlite3_libversion() != sqlite3.sqlite_version.encode():
        return None
    raw = ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value
    if not raw:
        return None
    db = ctypes.c_void_p(raw)
    lib.sqlite3_db_filename.restype = ctypes.c_char_p
    lib.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    name = lib.sqlite3_db_filename(db, b"main")
    if name is None or os.path.realpath(name.decode()) != os.path.realpath(path):
        return None
    return lib, db


def _loaded_library() -> str | None:
    """The libsqlite3 this process mapped (the one `_sqlite3` links); None if it is built in."""
    try:
        with open("/proc/self/maps") as fh:
            found = {line.split()[-1] for line in fh if "/libsqlite3" in line}
    except OSError:
        return None
    return found.pop() if len(found) == 1 else None
