"""The sandboxed worker that runs sqlite, files and http: where it runs, as whom, and what
the runtime accepts back from it."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmos_grammar.actions import ActionRunner, run_action
from llmos_grammar.actions.sqlite_guard import Guard, harden
from llmos_grammar.actions.worker import (
    decode,
    merge,
    nobody_can_read,
    package_folder,
    sandbox_policy,
    worker_argv,
)
from llmos_grammar.actions.worker_child import TARGETS, policy_from_json, policy_to_json
from llmos_grammar.ir import ActionPolicy, Policy
from llmos_grammar.results import ActionResult
from llmos_grammar.sandbox.plan import make_plan
from llmos_grammar.sandbox.probe import NOBODY, probe
from llmos_grammar.sandbox.runner import run_argv
from llmos_grammar.sandbox.standby import StandbyPool

LAYERS = make_plan(ActionPolicy(name="x", handler="files"), probe()).enforced


@pytest.fixture()
def database(tmp_path: Path) -> str:
    tmp_path.chmod(0o755)
    path = str(tmp_path / "shop.db")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO items VALUES (1, 'apple')")
    return path


def test_policy_travels_to_the_worker_without_env(tmp_path: Path) -> None:
    ap = ActionPolicy(
        name="q",
        handler="http",
        urls=("http://127.0.0.1:1/api",),
        json_fields=("info.version",),
        env=("TOKEN=secret-value",),
        options={"x": [1, 2]},
    )
    raw = policy_to_json(ap)
    assert "secret-value" not in raw
    assert policy_from_json(raw) == dataclasses.replace(ap, env=())
    argv = worker_argv(ap)
    assert argv[:4] == [sys.executable, "-I", "-S", "-c"] and argv[-2:] == ["http", raw]
    with pytest.raises(ValueError, match="no worker for handler 'python'"):
        worker_argv(dataclasses.replace(ap, handler="python"))


def test_sandbox_binds_the_package_and_only_the_database(database: str) -> None:
    ro = sandbox_policy(ActionPolicy(name="q", handler="sqlite", database=database))
    package = os.path.dirname(os.path.abspath(sys.modules["llmos_grammar"].__file__ or ""))
    assert ro.read == (package, database) and ro.write == ()
    rw = sandbox_policy(
        ActionPolicy(name="q", handler="sqlite", database=database, read_only=False)
    )
    assert rw.write == (database,) and rw.file_size_mb == 16 + 1  # grows by file_size_mb
    assert ro.output_bytes > 3 * 6 * 8192  # room for the JSON of three capped texts


@pytest.mark.skipif("uid" not in LAYERS or os.geteuid() != 0, reason="no uid drop here")
def test_worker_runs_as_uid_65534(tmp_path: Path, database: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    written = run_action(
        ActionPolicy(name="f", handler="files", write=(str(shared),)), "write made.txt\nx"
    )
    assert written.ok, written
    assert os.stat(shared / "made.txt").st_uid == NOBODY
    # a database only root may read: the runtime could open it, the worker cannot
    os.chmod(database, 0o600)
    result = run_action(ActionPolicy(name="q", handler="sqlite", database=database), "SELECT 1;")
    assert not result.ok and "cannot open database" in result.stderr, result
    assert f"uid {NOBODY}" in result.stderr  # the hint says who needs access


def test_relative_database_path_is_the_runtimes(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(os.path.dirname(database))
    ap = ActionPolicy(name="q", handler="sqlite", database="shop.db")
    assert database in sandbox_policy(ap).read
    assert run_action(ap, "SELECT name FROM items;").rows == "name\napple\n"


def test_warm_worker_comes_from_the_standby(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[bool] = []
    take = StandbyPool.take

    def spy(self: StandbyPool, key: str, argv: list[str], policy: ActionPolicy) -> object:
        child = take(self, key, argv, policy)
        taken.append(child is not None)
        return child

    monkeypatch.setattr(StandbyPool, "take", spy)
    ap = ActionPolicy(name="q", handler="sqlite", database=database, read_only=False)
    os.chmod(database, 0o666)
    with ActionRunner(Policy("p.yaml", {"q": ap})) as runner:
        first = runner.run("q", "INSERT INTO items VALUES (2, 'pear');")
        second = runner.run("q", "SELECT count(*) FROM items;")
    assert first.ok and second.ok and second.rows == "count(*)\n2\n", (first, second)
    assert taken[-2:] == [True, True]  # prepared when the runner started, then after each


def test_a_worker_killed_by_a_signal_is_a_failed_result(database: str) -> None:
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;"
    # the wall clock has room: on two busy cores 1 s of CPU takes 10 s and more
    ap = ActionPolicy(name="q", handler="sqlite", database=database, cpu_s=1, timeout_s=120)
    result = run_action(ap, slow)
    # RLIMIT_CPU ends it with SIGKILL, reported as the cpu limit (sandbox.outcome)
    assert result.signal == 9 and result.limit_hit == "cpu" and not result.ok, result
    assert result.exit_code is None and result.cpu_s < 5
    assert "the worker ended without a result" in result.stderr


def test_a_crashing_worker_is_a_failed_result() -> None:
    ap = ActionPolicy(name="q", handler="sqlite", database="/nonexistent.db")
    crash = [sys.executable, "-I", "-S", "-c", "import ctypes; ctypes.string_at(0)"]
    sandbox = run_argv(crash, sandbox_policy(ap))
    result = merge(ap, sandbox)
    assert result.signal == 11 and result.exit_code is None and not result.ok, result
    assert "sqlite: the worker ended without a result (killed by signal 11)" in result.stderr
    assert result.limits["output_bytes"] == ap.output_bytes  # the action's, not the envelope's


def test_wall_clock_stops_one_long_opcode(database: str) -> None:
    instr = "SELECT instr(printf('%.*c', 16000000, 'a'), printf('%.*c', 20000, 'a') || 'b');"
    ap = ActionPolicy(name="q", handler="sqlite", database=database, timeout_s=1.0)
    start = time.monotonic()
    result = run_action(ap, instr)
    assert result.timed_out and result.limit_hit == "timeout", result
    assert time.monotonic() - start < 2.5
    assert "stopped at the wall clock (timeout_s=1.0)" in result.stderr


def test_worker_json_is_checked_field_by_field() -> None:
    ap = ActionPolicy(name="q", handler="files", output_bytes=10)
    good = {"stdout": "x" * 50, "exit_code": 0, "limits": {"read": ["/a"], "bad": {"x": 1}}}
    result = decode(json.dumps(good), ap)
    assert result is not None and result.stdout == "x" * 10 and result.truncated
    assert result.limits == {"read": ["/a"]}
    for bad in (
        "not json",
        "[1]",
        '{"stdout": 5}',
        '{"exit_code": true}',
        '{"exit_code": "0"}',
        '{"limit_hit": "everything"}',
        '{"timed_out": "no"}',
        '{"refused": 3}',
    ):
        assert decode(bad, ap) is None, bad
    garbage = ActionResult(stdout="{half", exit_code=0)
    merged = merge(ap, garbage)
    assert merged.exit_code == 1 and "no valid result" in merged.stderr and not merged.ok


def test_guard_allows_only_what_the_policy_allows() -> None:
    ro, rw = Guard(read_only=True), Guard(read_only=False)
    ok, deny = sqlite3.SQLITE_OK, sqlite3.SQLITE_DENY
    assert ro(sqlite3.SQLITE_SELECT, None, None, None, None) == ok
    assert ro(sqlite3.SQLITE_FUNCTION, None, "upper", None, None) == ok
    assert ro(sqlite3.SQLITE_FUNCTION, None, "FTS3_TOKENIZER", None, None) == deny
    assert ro(sqlite3.SQLITE_PRAGMA, "table_info", "items", None, None) == ok
    assert ro(sqlite3.SQLITE_PRAGMA, "user_version", None, None, None) == ok
    assert ro(sqlite3.SQLITE_PRAGMA, "user_version", "3", None, None) == deny
    assert ro(sqlite3.SQLITE_PRAGMA, "writable_schema", None, None, None) == deny
    assert ro(sqlite3.SQLITE_INSERT, "items", None, "main", None) == deny
    assert ro(sqlite3.SQLITE_CREATE_TEMP_TABLE, "t", None, "temp", None) == deny
    assert rw(sqlite3.SQLITE_INSERT, "items", None, "main", None) == ok
    assert rw(sqlite3.SQLITE_ATTACH, "x.db", None, None, None) == deny
    assert ro.denied[-1] == "the database is read-only for this action (policy: read_only: true)"
    assert "writable_schema" in ro.denied[-3] and rw.message().startswith(" (ATTACH")


def test_harden_turns_sqlite_defensive(tmp_path: Path) -> None:
    path = str(tmp_path / "d.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a)")
    if not harden(conn, path):
        pytest.skip("this interpreter's SQLite cannot be configured (the authorizer stands alone)")
    with pytest.raises(sqlite3.OperationalError, match="disabled"):
        conn.execute("SELECT fts3_tokenizer('simple', x'4141414141414141')")
    conn.execute("PRAGMA writable_schema = ON")
    with pytest.raises(sqlite3.OperationalError, match="may not be modified"):
        conn.execute("UPDATE sqlite_master SET sql = 'CREATE TABLE t (b)'")
    conn.close()


def test_package_readable_by_nobody(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text("")
    tmp_path.chmod(0o755)
    package.chmod(0o755)
    assert nobody_can_read(str(package), outside_too=False)
    (package / "m.py").chmod(0o600)
    assert not nobody_can_read(str(package), outside_too=False)
    (package / "m.py").chmod(0o644)
    tmp_path.chmod(0o700)
    assert nobody_can_read(str(package), outside_too=False)
    assert not nobody_can_read(str(package), outside_too=True)


# What a cold worker must not pay for: the compiled machine's dataclasses, errors (pathlib),
# the runner, approval, registry and sandbox modules of the runtime.
RUNTIME_ONLY = {
    "llmos_grammar.ir",
    "llmos_grammar.errors",
    "llmos_grammar.actions.dispatch",
    "llmos_grammar.actions.approval",
    "llmos_grammar.actions.registry",
    "llmos_grammar.sandbox",
    "pathlib",
}


@pytest.mark.parametrize("handler", sorted(TARGETS))
def test_the_worker_imports_its_handler_and_nothing_of_the_runtime(handler: str) -> None:
    parent = os.path.dirname(package_folder())
    code = (
        f"import sys; sys.path.insert(0, {parent!r})\n"
        "from llmos_grammar.actions import worker_child\n"
        f"worker_child._function({handler!r})\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    argv = [sys.executable, "-I", "-S", "-c", code]
    loaded = set(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split())
    assert TARGETS[handler].partition(":")[0] in loaded
    assert not loaded & RUNTIME_ONLY, sorted(loaded & RUNTIME_ONLY)
    others = {TARGETS[h].partition(":")[0] for h in TARGETS if h != handler}
    assert not loaded & others, sorted(loaded & others)
