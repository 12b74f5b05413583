"""The YAML loader: every hostile input gives a located error or plain JSON-like data."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmos_grammar.errors import Location, SpecError
from llmos_grammar.spec import yamldoc
from llmos_grammar.spec.yamldoc import MAX_DEPTH, MAX_FILE_BYTES, load, parse


@pytest.fixture(params=["default", "pure"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs with libyaml's parser (when PyYAML has it) and with the Python one."""
    if request.param == "pure":
        monkeypatch.setattr(yamldoc, "EVENT_LOADER", yaml.SafeLoader)
    yield request.param


def block_mappings(levels: int) -> str:
    return "".join(" " * i + "a:\n" for i in range(levels))


# (name, text, line, column, part of the message)
ERRORS = [
    ("deep flow list", "llmos: 1\nx: " + "[" * 100_000, 2, 67, "nested more than 64 levels"),
    ("deep closed list", "x: " + "[" * 5000 + "]" * 5000, 1, 67, "nested more than 64"),
    ("deep flow mapping", "llmos: 1\nx: " + "{a: " * 100_000, 2, 256, "nested more than 64"),
    ("deep block mapping", block_mappings(100), 65, 65, "nested more than 64"),
    ("deep block list", "x:\n" + "- " * 50_000 + "1\n", 2, 127, "nested more than 64"),
    ("deep through alias", "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30,
     2, 34, "nested more than 64"),
    ("recursive list", "llmos: 1\nx: &a [*a]\n", 2, 8, "inside &a itself"),
    ("recursive mapping", "x: &a {b: {c: *a}}\n", 1, 15, "inside &a itself"),
    ("undefined alias", "x: *nope\n", 1, 4, "no anchor &nope"),
    ("merge key", "b: &b {x: 1}\nc: {<<: *b}\n", 2, 5, "merge keys (<<)"),
    ("alias to mapping as key", "m: &m {a: 1}\n? *m\n: 2\n", 2, 3, "key must be plain text"),
    ("complex key", "? [a, b]\n: 1\n", 1, 3, "key must be plain text"),
    ("mapping key in flow", "{[a]: 1}\n", 1, 2, "key must be plain text"),
    ("binary", "x: !!binary aGVsbG8=\n", 1, 4, "tag !!binary is not supported"),
    ("timestamp tag", "x: !!timestamp 2001-99-99\n", 1, 4, "tag !!timestamp"),
    ("set", "x: !!set {a, b}\n", 1, 4, "tag !!set is not supported on a mapping"),
    ("omap", "x: !!omap [a: 1]\n", 1, 4, "tag !!omap is not supported on a list"),
    ("pairs", "x: !!pairs [a: 1, a: 2]\n", 1, 4, "tag !!pairs"),
    ("map tag on a list", "x: !!map [1]\n", 1, 4, "tag !!map is not supported on a list"),
    ("str tag on a mapping", "x: !!str {a: 1}\n", 1, 4, "tag !!str is not supported"),
    ("local tag", "x: !foo bar\n", 1, 4, "tag !foo is not supported"),
    ("python object", "x: !!python/object:os.system {}\n", 1, 4, "!!python/object:os.system"),
    ("python name", "x: !!python/name:os.system ''\n", 1, 4, "!!python/name:os.system"),
    ("tag on a key", "!foo k: 1\n", 1, 1, "tag !foo"),
    ("tag directive", "%TAG !e! tag:example.com,2000:\n---\nx: !e!y 1\n", 3, 4, "example.com"),
    ("bad int", "x: !!int abc\n", 1, 4, "'abc' is not a valid !!int value"),
    ("empty int", "x: !!int ''\n", 1, 4, "!!int value"),
    ("bad float", "x: !!float abc\n", 1, 4, "!!float value"),
    ("bad bool", "x: !!bool maybe\n", 1, 4, "!!bool value"),
    ("huge int", "x: " + "9" * 100_000 + "\n", 1, 4, "a number of 100000 characters"),
    ("huge sexagesimal", "x: " + ":".join(["59"] * 30_000) + "\n", 1, 4, "quote it"),
    ("long key", "? " + "k" * 2000 + "\n: 1\n", 1, 3, "a key of 2000 characters"),
    ("long plain key", "k" * 2000 + ": 1\n", 1, 2001, "keys under 1024 characters"),
    ("value with a colon", "a: b: c\n", 1, 5, "quote a value"),
    ("key without colon", "a: 1\nb\nc: 2\n", 3, 1, "':' after it"),
    ("surrogate escape", 'x: "\\ud800"\n', 1, 4, "\\ud800 escape is half"),
    ("duplicate key", "a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key 'a'"),
    ("duplicate after quoting", "a: 1\n'a': 2\n", 2, 1, "duplicate key 'a'"),
    ("second document", "llmos: 1\n---\nllmos: 2\n", 2, 1, "a second YAML document"),
    ("many documents", "---\n" * 200_000, 2, 1, "a second YAML document"),
    ("NUL byte", "llmos: 1\nx: a\x00b\n", 2, 5, "control character U+0000"),
    ("NUL in a comment", "# a\x00\n", 1, 4, "U+0000"),
    ("bell after CR lines", "a: 1\r\rb: \x07\r", 3, 4, "U+0007"),
    ("tab indentation", "llmos: 1\nstates:\n\ta: 1\n", 3, 1, "indent with spaces"),
    ("unclosed flow", "llmos: 1\nstart: [\n", 3, 1, "invalid YAML"),
    ("bad version", "%YAML 2.0\n---\na: 1\n", 1, 1, "incompatible YAML document"),
    ("only a document end", "...\n", 1, 1, "invalid YAML"),
    ("too many values", "x: [" + ",".join(["1"] * 20_000) + "]\n", 1, 20_001, "10000 values"),
    ("alias bomb", "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: [" + ",".join(["*a"] * 1100) + "]",
     2, 2726, "anchors and aliases"),
    ("aliased long text", "a: &a " + "z" * 100_000 + "\nb: [" + ",".join(["*a"] * 30) + "]",
     2, 62, "more than 2097152 characters of text"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "column", "part"), [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])  # fmt: skip
def test_bad_yaml_gives_a_located_error(
    loader: str, text: str, line: int, column: int, part: str
) -> None:
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        parse(text, "s.yaml")
    assert time.perf_counter() - started < 10
    where = caught.value.location
    assert where is not None
    assert (where.file, where.line, where.column) == ("s.yaml", line, column), caught.value
    assert part in caught.value.message


# (name, text, the data it loads to)
VALUES: list[tuple[str, str, Any]] = [
    ("keys stay text", "on: 1\ntrue: 2\n1: 3\n1.0: 4\n~: 5\nnull: 6\n", {
        "on": 1, "true": 2, "1": 3, "1.0": 4, "~": 5, "null": 6}),
    ("empty key", "? \n: 1\n", {"": 1}),
    ("dates stay text", "d: 2002-12-14\nt: 2001-12-14t21:59:43.10-05:00\n", {
        "d": "2002-12-14", "t": "2001-12-14t21:59:43.10-05:00"}),
    ("merge and value markers as values stay text", "a: <<\nb: =\n", {"a": "<<", "b": "="}),
    ("quoted << key is text", "'<<': 1\n", {"<<": 1}),
    ("YAML 1.1 values", "a: yes\nb: 0x1F\nc: 017\nd: 1_000\ne: 190:20:30\nf: ~\n", {
        "a": True, "b": 31, "c": 15, "d": 1000, "e": 685230, "f": None}),
    ("core tags", "a: !!str 1\nb: !!int '7'\nc: !!float 1\nd: !!bool yes\ne: !!null x\nf: ! 12\n",
     {"a": "1", "b": 7, "c": 1.0, "d": True, "e": None, "f": "12"}),
    ("collection tags", "a: !!map {x: 1}\nb: !!seq [1]\nc: ! [2]\n", {
        "a": {"x": 1}, "b": [1], "c": [2]}),
    ("alias as a key", "a: &x foo\n*x : 1\n", {"a": "foo", "foo": 1}),
    ("anchor on a key", "&k on: 1\nb: *k\n", {"on": 1, "b": True}),
    ("anchor on the document", "--- &d\nllmos: 1\n", {"llmos": 1}),
    ("aliases are copies", "a: &x [1]\nb: *x\n", {"a": [1], "b": [1]}),
    ("empty file", "", None),
    ("only a comment", "# nothing here\n", None),
    ("only a document marker", "---\n", None),
    ("BOM", "\ufeffllmos: 1\n", {"llmos": 1}),
    ("CR line endings", "llmos: 1\rstates: {}\r", {"llmos": 1, "states": {}}),
    ("infinity", "a: .inf\nb: 1.0e+999999\n", {"a": float("inf"), "b": float("inf")}),
    ("long scalar", "x: " + "a" * 900_000 + "\n", {"x": "a" * 900_000}),
    ("deep but allowed", "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n",
     {"x": json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))}),
]  # fmt: skip


@pytest.mark.parametrize(("text", "data"), [c[1:] for c in VALUES], ids=[c[0] for c in VALUES])
def test_odd_but_valid_yaml_loads_to_plain_data(loader: str, text: str, data: Any) -> None:
    doc = parse(text, "s.yaml")
    assert doc.data == data
    assert doc.loc(()).line >= 1
    json.dumps(doc.data)  # only text, numbers, booleans, null, lists and text-keyed mappings


def test_locations_with_a_bom_and_cr_line_endings(loader: str) -> None:
    doc = parse("\ufeffllmos: 1\rstates:\r  a: 1\r", "s.yaml")
    assert (doc.loc(("states", "a")).line, doc.loc(("states", "a")).column) == (3, 6)
    assert doc.loc(("states", "a"), key=True).column == 3


def test_alias_locations_point_at_the_alias(loader: str) -> None:
    doc = parse("a: &x {k: [1, 2]}\nb: *x\n", "s.yaml")
    assert doc.data["b"] is not doc.data["a"]
    alias = doc.loc(("b",))
    assert (alias.line, alias.column) == (2, 4)
    assert doc.loc(("b", "k", 1)) == alias


def test_many_keys_and_a_huge_scalar_stay_fast(loader: str) -> None:
    many = "".join(f"k{i}: {i}\n" for i in range(9_000))
    huge = "x: '" + "b" * 1_000_000 + "'\n"
    started = time.perf_counter()
    assert len(parse(many, "s.yaml").data) == 9_000
    assert len(parse(huge, "s.yaml").data["x"]) == 1_000_000
    with pytest.raises(SpecError, match="10000 values"):
        parse("".join(f"k{i}: 1\n" for i in range(100_000)), "s.yaml")
    assert time.perf_counter() - started < 20  # both parsers; about 1 s with libyaml


def test_a_pipe_or_device_is_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(SpecError, match="not a regular file"):
            load(path)


def test_a_too_large_file_is_located_where_the_limit_passes(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("llmos: 1\n" + "x" * 99 + "\n" * (MAX_FILE_BYTES - 100 + 5))
    with pytest.raises(SpecError, match="more than the 1048576 allowed") as caught:
        load(path)
    # Two lines of text, then empty lines: byte MAX_FILE_BYTES starts line MAX_FILE_BYTES - 106.
    assert caught.value.location == Location(str(path), MAX_FILE_BYTES - 106, 1)
