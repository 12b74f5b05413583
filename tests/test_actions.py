"""Action handlers: python, shell, sqlite, files, http, plugins, approval and the runner."""

from __future__ import annotations

import dataclasses
import http.server
import io
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos_grammar.actions import HANDLERS, ActionResult, ActionRunner, run_action
from llmos_grammar.actions.approval import terminal_approver
from llmos_grammar.actions.http import allowed
from llmos_grammar.actions.registry import handler, standby_key
from llmos_grammar.actions.shell import check_commands
from llmos_grammar.actions.sqlite import render_table
from llmos_grammar.errors import ActionError
from llmos_grammar.ir import ActionPolicy, Policy


def shared(folder: Path, mode: int = 0o755) -> Path:
    """`folder` opened to the sandbox user (uid 65534) that every handler runs as."""
    folder.chmod(mode)
    return folder


def policy(handler: str, **kw: object) -> ActionPolicy:
    return ActionPolicy(name=handler, handler=handler, **kw)  # type: ignore[arg-type]


def test_each_registered_handler_is_the_one_that_runs(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # handlers run as uid 65534, which must be able to read it
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (41)")
    (tmp_path / "note.txt").write_text("hello from a file\n")
    cases = {
        "python": (policy("python"), "print(6 * 7)\n", "42"),
        "shell": (policy("shell"), "echo $((40 + 3))\n", "43"),
        "sqlite": (policy("sqlite", database=str(db)), "SELECT x + 3 FROM t", "44"),
        "files": (policy("files", read=(str(tmp_path),)), f"read {tmp_path}/note.txt", "hello"),
    }
    for name, (ap, text, expected) in cases.items():
        result = run_action(ap, text)
        assert result.ok and expected in result.stdout + result.rows, (name, result)
    # http with no URL allowed is refused by the http handler itself, before any network use
    refused = run_action(policy("http", network=True), "GET https://example.invalid/")
    assert not refused.ok and "allow" in (refused.stderr + str(refused.refused)).lower()
    assert set(HANDLERS) == set(cases) | {"http"}


def test_only_sandboxed_handlers_keep_a_warm_standby() -> None:
    for name, entry in HANDLERS.items():
        standby = entry.standby(policy(name))
        assert (standby is not None) == entry.sandboxed, name
        if standby is not None:
            key, argv = standby
            assert key == standby_key(policy(name)) == f"{name}:{name}" and argv
    persistent = policy("python", persistent=True)
    assert handler("python").standby(persistent) is None  # type: ignore[union-attr]
    assert handler("plugin_module:fn") is None


def test_python_runs_with_own_interpreter_isolated_and_fresh_workdir() -> None:
    code = "import sys, os\nprint(sys.flags.isolated, sys.executable)\nprint(os.listdir('.'))\n"
    result = run_action(policy("python"), code)
    assert result.ok, result
    flags, exe = result.stdout.splitlines()[0].split()
    assert flags == "1" and os.path.realpath(exe) == os.path.realpath(os.sys.executable)
    assert result.stdout.splitlines()[1] == "[]"
    assert result.limits["timeout_s"] == 5.0 and "timeout" in result.limits["layers"]
    assert result.duration_s > 0


def test_python_site_modes() -> None:
    code = "import sys\nprint(sys.flags.no_site, __name__)\nimport yaml\nprint('yaml')\n"
    minimal = run_action(policy("python"), code)
    assert minimal.ok and minimal.stdout == "1 __main__\nyaml\n", minimal
    full = run_action(policy("python", site="full"), code)
    assert full.ok and full.stdout == "0 __main__\nyaml\n", full
    bare = run_action(policy("python", site="none"), code)
    assert bare.exit_code == 1 and "ModuleNotFoundError" in bare.stderr


def test_python_main_module_semantics() -> None:
    code = (
        "import pickle\nclass Point:\n    pass\n"
        "print(type(pickle.loads(pickle.dumps(Point()))).__name__)\nexit(4)\n"
    )
    result = run_action(policy("python"), code)
    assert result.exit_code == 4 and result.stdout == "Point\n", result
    failed = run_action(policy("python"), "def f():\n    raise ValueError('bad')\nf()\n")
    assert failed.exit_code == 1 and "<string>" not in failed.stderr
    assert failed.stderr.startswith('Traceback (most recent call last):\n  File "<stdin>", line 3')
    assert failed.stderr.endswith("ValueError: bad\n")


def test_python_error_and_exit_code() -> None:
    result = run_action(policy("python"), "import sys\nprint('x')\nsys.exit(3)\n")
    assert result.exit_code == 3 and not result.ok and result.stdout == "x\n"
    failed = run_action(policy("python"), "1/0\n")
    assert failed.exit_code == 1 and "ZeroDivisionError" in failed.stderr


def test_python_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-hidden")
    monkeypatch.setenv("ALLOWED_NAME", "visible")
    code = "import os\nprint(sorted(os.environ.items()))\n"
    result = run_action(policy("python", env=("ALLOWED_NAME", "FIXED=1")), code)
    assert "sk-hidden" not in result.stdout
    assert "('ALLOWED_NAME', 'visible')" in result.stdout and "('FIXED', '1')" in result.stdout


def test_python_timeout_and_output_cap() -> None:
    slow = run_action(policy("python", timeout_s=0.5), "import time\ntime.sleep(10)\n")
    assert slow.timed_out and slow.limit_hit == "timeout" and slow.duration_s < 3
    loud = run_action(policy("python", output_bytes=100), "print('y' * 100000)\n")
    assert loud.truncated and loud.limit_hit == "output" and len(loud.stdout) <= 100


def test_python_cpu_limit() -> None:
    # the wall clock has room: on two busy cores 1 s of CPU takes 10 s and more
    result = run_action(policy("python", cpu_s=1, timeout_s=120), "while True:\n    pass\n")
    assert result.limit_hit == "cpu", result
    assert result.cpu_s >= 0.9


def test_persistent_session_keeps_variables_and_restarts_after_timeout() -> None:
    ap = policy("python", persistent=True, timeout_s=1)
    with ActionRunner(Policy("p.yaml", {"py": ap})) as runner:
        assert runner.run("py", "x = 41\n").ok
        assert runner.run("py", "x += 1\nprint(x)\n").stdout == "42\n"
        error = runner.run("py", "undefined_name\n")
        assert error.exit_code == 1 and "NameError" in error.stderr
        assert runner.run("py", "print(x)\n").stdout == "42\n"
        hung = runner.run("py", "while True:\n    pass\n")
        assert hung.timed_out and "session restarted" in hung.stderr
        assert "NameError" in runner.run("py", "print(x)\n").stderr
        assert runner.run("py", "print('fresh')\n").stdout == "fresh\n"


def test_shell_runs_bash_and_honours_allow_list() -> None:
    result = run_action(policy("shell"), "echo $((6 * 7)) | cat\n")
    assert result.ok and result.stdout == "42\n"
    limited = policy("shell", commands=("echo", "cat"))
    assert run_action(limited, "echo hi | cat").ok
    refused = run_action(limited, "echo hi; rm -rf /tmp/x")
    assert refused.refused is not None and "rm" in refused.refused


@pytest.mark.parametrize(
    "line",
    ["echo $(id)", "echo `id`", "cat <(id)", "eval id", "X=1 id", "echo a && id", "{ id; }"],
)
def test_shell_allow_list_refuses_escapes(line: str) -> None:
    assert check_commands(line, ("echo", "cat")) is not None


@pytest.fixture()
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "shop.db")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER, name TEXT, note TEXT)")
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?)", [(i, f"n{i}", None) for i in range(50)]
        )
    os.chmod(path, 0o666)  # the worker runs as uid 65534; the writable tests write as it
    return path


def test_sqlite_table_and_row_cap(database: str) -> None:
    result = run_action(policy("sqlite", database=database, max_rows=3), "SELECT * FROM items;")
    assert result.ok and result.truncated
    assert result.rows.splitlines()[:4] == [
        "id | name | note",
        "0 | n0 | NULL",
        "1 | n1 | NULL",
        "2 | n2 | NULL",
    ]
    assert "more rows" in result.rows and result.stdout == result.rows


def test_sqlite_read_only_refuses_writes_even_after_pragma(database: str) -> None:
    ap = policy("sqlite", database=database)
    for sql in [
        "DELETE FROM items;",
        "PRAGMA query_only=OFF; DROP TABLE items;",
        "VACUUM INTO 'x.db';",
    ]:
        assert not run_action(ap, sql).ok
    assert run_action(ap, "SELECT count(*) FROM items;").rows == "count(*)\n50\n"


def test_sqlite_writable_when_allowed_and_timeout(database: str) -> None:
    ap = policy("sqlite", database=database, read_only=False)
    assert run_action(ap, "INSERT INTO items VALUES (99, 'x', 'y');").ok
    assert "99" in run_action(ap, "SELECT id FROM items WHERE id = 99;").rows
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;"
    result = run_action(dataclasses.replace(ap, timeout_s=0.3), slow)
    assert result.timed_out and result.limit_hit == "timeout"


def test_render_table_escapes_cells() -> None:
    assert render_table(["a"], [("x|y\nz",), (b"\0\1",)], False) == "a\nx\\|y\\nz\n<2 bytes>\n"


def test_files_list_read_write(tmp_path: Path) -> None:
    shared(tmp_path, 0o777)
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha\n")
    ro = policy("files", read=(str(tmp_path),))
    assert run_action(ro, "list .").stdout == "a.txt\nsub/\n"
    assert run_action(ro, "read a.txt").stdout == "alpha\n"
    assert not run_action(ro, "write b.txt\nbeta").ok
    rw = policy("files", write=(str(tmp_path),), file_size_mb=1)
    assert run_action(rw, "write b.txt\nbeta\n").ok
    assert (tmp_path / "b.txt").read_text() == "beta\n"
    assert run_action(rw, "append b.txt\ngamma").ok
    assert (tmp_path / "b.txt").read_text() == "beta\ngamma"
    assert not run_action(rw, "write big.txt\n" + "x" * (2 << 20)).ok
    assert "unknown command" in run_action(rw, "delete b.txt").stderr


def test_files_refuses_escapes(tmp_path: Path) -> None:
    inside = tmp_path / "in"
    inside.mkdir()
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path, inside / "up")
    os.symlink(tmp_path / "secret", inside / "link")
    ap = policy("files", read=(str(inside),), write=(str(inside),))
    for command in [
        "read ../secret",
        "read up/secret",
        "read link",
        f"read {tmp_path}/secret",
        "list ..",
    ]:
        result = run_action(ap, command)
        assert not result.ok and "outside" in result.stderr, command
    assert not run_action(ap, "write up/new\nx").ok and not (tmp_path / "new").exists()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:1/elsewhere")
            self.end_headers()
            return
        body = b"z" * 50000 if self.path == "/big" else b"hello"
        if self.path == "/json":
            padding = {"releases": {f"0.{i}": "x" * 100 for i in range(100)}}
            body = json.dumps({**padding, "info": {"name": "lark", "version": "1.3.1"}}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"got " + data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_http_get_post_caps_and_allow_list(server: str) -> None:
    ap = policy("http", network=True, urls=(server + "/",), output_bytes=1000)
    assert run_action(ap, f"GET {server}/hi").stdout == "hello"
    big = run_action(ap, f"{server}/big")
    assert big.truncated and len(big.stdout) == 1000
    assert run_action(ap, f"POST {server}/p\nbody").refused is not None
    post = dataclasses.replace(ap, methods=("GET", "POST"))
    assert run_action(post, f"POST {server}/p\nbody").stdout == "got body"
    assert run_action(ap, f"GET {server}/redirect").refused is not None
    assert (
        run_action(dataclasses.replace(ap, network=False), f"GET {server}/hi").refused is not None
    )
    assert run_action(ap, "GET http://127.0.0.1:1/x").refused is not None


def test_http_json_fields_pick_values_out_of_a_large_document(server: str) -> None:
    fields = ("info.name", "info.version", "info.missing")
    ap = policy("http", network=True, urls=(server + "/",), output_bytes=200, json_fields=fields)
    result = run_action(ap, f"GET {server}/json")
    assert result.ok and not result.truncated
    assert result.stdout == "info.name: lark\ninfo.version: 1.3.1\n"
    # a body that is not JSON comes back as it is, capped as usual
    assert run_action(ap, f"GET {server}/hi").stdout == "hello"


def test_http_allow_list_matching() -> None:
    allow = ("https://api.example.com/v1",)
    assert allowed("https://api.example.com/v1/items?q=1", allow)
    assert allowed("https://api.example.com/v1", allow)
    assert not allowed("https://api.example.com/v10", allow)
    assert not allowed("http://api.example.com/v1", allow)
    assert not allowed("https://api.example.com.evil.org/v1", allow)
    assert not allowed("https://user@api.example.com/v1", allow)
    assert not allowed("file:///etc/passwd", allow)


def plugin_echo(text: str, ap: ActionPolicy) -> ActionResult:
    return ActionResult(stdout=text.upper())


def plugin_broken(text: str, ap: ActionPolicy) -> ActionResult:
    raise RuntimeError("boom")


def test_plugins() -> None:
    assert run_action(policy("tests.test_actions:plugin_echo"), "hi").stdout == "HI"
    broken = run_action(policy("tests.test_actions:plugin_broken"), "hi")
    assert broken.exit_code == 1 and "boom" in broken.stderr
    for bad in ["nosuchmodule_xyz:f", "tests.test_actions:missing", "justaname"]:
        with pytest.raises(ActionError):
            run_action(policy(bad), "hi")


def test_runner_approval_and_unknown_action() -> None:
    ap = policy("python", confirm="ask")
    pol = Policy("p.yaml", {"py": ap})
    with ActionRunner(pol) as runner:
        assert runner.run("py", "print(1)").refused is not None
        with pytest.raises(ActionError, match="no action 'nope'"):
            runner.run("nope", "")
    with ActionRunner(pol, approve=lambda a, t: False) as runner:
        assert runner.run("py", "print(1)").refused == "not approved"
    seen: list[str] = []
    with ActionRunner(pol, approve=lambda a, t: seen.append(t) is None) as runner:
        approved = runner.run("py", "print(1)")
    assert approved.stdout == "1\n" and seen == ["print(1)"]


def test_warm_runner_gives_fresh_sandboxes() -> None:
    quick = ActionPolicy(name="quick", handler="python", timeout_s=1)
    pol = Policy("p.yaml", {"py": policy("python"), "sh": policy("shell"), "quick": quick})
    with ActionRunner(pol) as runner:
        for _ in range(3):
            result = runner.run("py", "import os\nprint(os.listdir('.'))\nopen('x', 'w')\n")
            assert result.ok and result.stdout == "[]\n", result
            assert runner.run("sh", "ls; touch y").stdout == ""
        slow = runner.run("quick", "import time\ntime.sleep(30)\n")
        assert slow.timed_out and 1 <= slow.duration_s < 2.5, slow
        assert runner.run("quick", "print(1)").stdout == "1\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_approver() -> None:
    ap = policy("python", confirm="ask")
    assert terminal_approver(True)(ap, "x")
    assert not terminal_approver(False, stdin=io.StringIO("y\n"))(ap, "x")  # not a terminal
    shown = io.StringIO()
    assert terminal_approver(False, stdin=_Tty("y\n"), stderr=shown)(ap, "print(1)\n")
    assert "print(1)" in shown.getvalue()
    assert not terminal_approver(False, stdin=_Tty("\n"), stderr=io.StringIO())(ap, "x")
    always = policy("python", confirm="always")
    assert not terminal_approver(True, stdin=io.StringIO("y\n"))(always, "x")  # always asks
    assert terminal_approver(True, stdin=_Tty("yes\n"), stderr=io.StringIO())(always, "x")
