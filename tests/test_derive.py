"""Grammars derived from the policy (`derive: policy`) follow the policy and the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from llmos_grammar.cli.main import main
from llmos_grammar.grammar import accepts
from llmos_grammar.ir import GrammarSource, GrammarState
from llmos_grammar.spec.check import check_file, check_paths

SPEC = """\
llmos: 1
policy: policy.yaml
start: query
states:
  query:
    type: grammar
    derive: policy
    close: "[/Q]"
    next: run
  run:
    type: action
    action: act
    input: query
    next: end
  end: {type: final}
"""


def spec_with(tmp_path: Path, policy: str, tests: str = "") -> Path:
    (tmp_path / "policy.yaml").write_text("llmos-policy: 1\nactions:\n  act:\n" + policy)
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + tests)
    return path


def derived(path: Path) -> GrammarSource:
    checked = check_file(str(path))
    assert checked.machine is not None, checked.diagnostics
    state = checked.machine.states["query"]
    assert isinstance(state, GrammarState)
    return state.constraint


def make_db(path: Path, extra_column: bool = False) -> None:
    db = sqlite3.connect(path)
    more = ", email TEXT" if extra_column else ""
    db.executescript(
        f"DROP TABLE IF EXISTS orders; DROP TABLE IF EXISTS people;"
        f"CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT{more});"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, person_id INTEGER REFERENCES people(id),"
        " total REAL);"
    )
    db.commit()
    db.close()


def test_sqlite_grammar_is_typed_by_the_schema_and_follows_it(tmp_path: Path) -> None:
    make_db(tmp_path / "db.sqlite")
    path = spec_with(tmp_path, "    handler: sqlite\n    database: db.sqlite\n")
    source = derived(path)
    assert accepts(source, "SELECT name FROM people WHERE id = 3")
    assert accepts(
        source,
        "SELECT people.name, SUM(orders.total) FROM orders"
        " JOIN people ON people.id = orders.person_id GROUP BY people.name",
    )
    assert not accepts(source, "SELECT email FROM people")  # no such column
    assert not accepts(source, "SELECT name FROM pets")  # no such table
    assert not accepts(source, "SELECT total FROM people")  # a column of another table
    assert not accepts(source, "DELETE FROM people")
    make_db(tmp_path / "db.sqlite", extra_column=True)
    assert accepts(derived(path), "SELECT email FROM people")  # the next check follows


def test_shell_grammar_allows_exactly_the_listed_commands(tmp_path: Path) -> None:
    path = spec_with(tmp_path, "    handler: shell\n    commands: [echo, wc]\n")
    source = derived(path)
    assert accepts(source, "echo hi | wc -l")
    assert accepts(source, "echo 'a b' > out.txt && wc -c out.txt")
    refused_lines = ("rm -rf /", "echo hi | sh", "echox hi", "X=1 cat /etc/passwd")
    # no assignments before a listed command either (PATH=... would change what it runs)
    for refused in (*refused_lines, "PATH=/tmp echo hi", "X=1 echo hi | wc -l"):
        assert not accepts(source, refused), refused


def test_files_grammar_stays_under_the_read_folders(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    path = spec_with(tmp_path, "    handler: files\n    read: [notes]\n")
    source = derived(path)
    root = str((tmp_path / "notes").resolve())
    for good in ("list", "read todo.txt", "read sub/a.txt", f"read {root}/todo.txt", "list sub"):
        assert accepts(source, good), good
    for bad in ("read ../policy.yaml", "read /etc/passwd", "read .secret", "write x.txt"):
        assert not accepts(source, bad), bad


def test_http_grammar_has_the_methods_and_url_prefixes(tmp_path: Path) -> None:
    policy = "    handler: http\n    network: true\n    urls: [https://api.example.com/v1/]\n"
    source = derived(spec_with(tmp_path, policy))
    assert accepts(source, "GET https://api.example.com/v1/items/7?full=1")
    for bad in (
        "GET https://api.example.com/v2/items",
        "GET https://evil.example/v1/",
        "GET https://api.example.com.evil.example/v1/x",
        "POST https://api.example.com/v1/items",
    ):
        assert not accepts(source, bad), bad


def test_derive_without_a_consumer_is_a_located_error(tmp_path: Path) -> None:
    path = spec_with(tmp_path, "    handler: shell\n    commands: [echo]\n")
    path.write_text(path.read_text().replace("input: query", "input: end"))
    report, _ = check_paths([str(path)])
    found = [d for d in report.errors if "derive: policy" in d.message]
    assert found and found[0].location.line == 7


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("    handler: shell\n", "allows any command"),
        ("    handler: python\n", "cannot derive"),
        ("    handler: sqlite\n    database: missing.db\n", "cannot read the schema"),
    ],
)
def test_nothing_to_derive_from_is_an_error(tmp_path: Path, policy: str, words: str) -> None:
    report, _ = check_paths([str(spec_with(tmp_path, policy))])
    assert any(words in d.message for d in report.errors), report.errors


def test_show_grammar_prints_the_derived_grammar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = spec_with(tmp_path, "    handler: shell\n    commands: [echo, wc]\n")
    assert main(["check", "--show-grammar", str(path), "query"]) == 0
    captured = capsys.readouterr()
    assert 'CMD: "echo" | "wc"' in captured.out
    assert "query: lark, enforced by llguidance" in captured.err
    assert main(["check", "--show-grammar", str(path), "nope"]) == 2


def test_files_grammar_of_a_read_only_folder_names_its_files(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "todo.txt").write_text("- buy coffee\n")
    (notes / "sub" / "a.txt").write_text("a\n")
    (notes / ".hidden").write_text("x\n")
    path = spec_with(tmp_path, "    handler: files\n    read: [notes]\n")
    source = derived(path)
    for good in ("read todo.txt", "read sub/a.txt", "list", "list sub"):
        assert accepts(source, good), good
    for bad in ("read flight.txt", "read .hidden", "read sub/b.txt", "read ../todo.txt"):
        assert not accepts(source, bad), bad
    # the grammar follows the folder on the next derivation
    (notes / "flight.txt").write_text("TP 1351\n")
    assert accepts(derived(path), "read flight.txt")
