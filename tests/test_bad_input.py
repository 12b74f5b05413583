"""Bad input gives a located error and exit 1: never a traceback or a hang."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmos_grammar
from llmos_grammar.cli.main import main
from llmos_grammar.errors import Diagnostic, LlmosError
from llmos_grammar.spec.check import check_file, check_paths
from llmos_grammar.spec.yamldoc import MAX_DEPTH
from tests.specs import SPEC, write

BOMB = "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)
BOMB = 'a: &a ["lol"]\n' + BOMB


def check_one(path: Path) -> tuple[int, str]:
    codes = []
    report = check_file(str(path))
    codes = [d for d in report.diagnostics if d.severity == "error"]
    assert codes, "expected an error"
    first = codes[0]
    return first.location.line, first.message


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("llmos: 1\nstates:\n  a: {type: text\n  b: 1\n")
    line, message = check_one(path)
    assert line == 4 and message.startswith("invalid YAML")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"llmos: 1\nname: caf\xe9\n")
    line, message = check_one(path)
    assert line == 2 and "UTF-8" in message
    report = check_file(str(path))
    assert report.diagnostics[0].location.column == 10


def test_exponential_anchors_stop_quickly(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BOMB)
    started = time.perf_counter()
    _, message = check_one(path)
    assert "expands to more than" in message
    assert time.perf_counter() - started < 10  # a hang would take hours


def test_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("llmos: 1\n" + "# padding\n" * 200_000)
    _, message = check_one(path)
    assert "more than the 1048576 allowed" in message


def test_folder_given_as_spec_policy(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").mkdir()
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    _, message = check_one(path)
    assert "policy" in message


def test_self_including_grammar(tmp_path: Path) -> None:
    (tmp_path / "loop.lark").write_text('%import loop.start\nstart: "x"\n')
    spec = SPEC.replace('regex: "[a-z0-9+*() ]+\\\\n"', "grammar: loop.lark")
    line, _ = check_one(write(tmp_path, spec))
    assert line > 0


def test_cli_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    good = write(tmp_path)
    assert main(["check", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("llmos: 1\nstart: [\n")
    assert main(["check", str(bad)]) == 1
    assert main(["check", str(tmp_path / "missing.yaml")]) == 2
    assert main(["check", "--format", "nope", str(good)]) == 2
    result = subprocess.run(
        [sys.executable, "-m", "llmos_grammar.cli.main", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{bad}:3:1" in result.stdout


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    ["llmos", "start", "states", "policy", "prompt", "limits", "tests", "model", "sampling"]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    top=st.dictionaries(keys, values, max_size=6),
    state=st.dictionaries(st.text(max_size=6), values),
)
def test_wrong_types_everywhere_never_crash(tmp_path: Path, top: dict, state: dict) -> None:
    data = {"llmos": 1, **top}
    if isinstance(data.get("states"), dict):
        data["states"]["s"] = {"type": "text", **state}
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    checked = check_file(str(path))
    for diagnostic in checked.diagnostics:
        assert diagnostic.location.file == str(path)
        assert diagnostic.message


# ---- generated hostile YAML: every run ends in located diagnostics ------------------

PLAIN_SCALARS = [
    "e", "s", "end", "text", "final", "grammar", "5", "0.5", "'[CODE]'", "'[/CODE]'", "'[a-z]+'",
    "'start: \"x\"'", "{type: string}", "'policy.yaml'", "'{task}'", "python", "true", "null",
]  # fmt: skip
ODD_SCALARS = [
    "1", "-0", "yes", "on", "~", "2002-12-14", "2001-12-14t21:59:43.10-05:00", "0x1F", "017",
    "1_000", "190:20:30", ".nan", "-.inf", "1.0e+999", "<<", "=", "''", '"\\ud800"',
    '"\\t\\u00e9\\x85"', "!!binary aGVsbG8=", "!!int abc", "!!int '7'", "!!float x",
    "!!bool maybe", "!!null", "!!str 1", "!!timestamp 2001-12-14", "!foo bar", "! 12",
    "!!python/name:os.system ''", "!<tag:yaml.org,2002:str> x", "*a", "*b", "*nope",
    "9" * 200, "'" + "a" * 2000 + "'", "[CODE]",
]  # fmt: skip
STATE_KEYS = [
    "type", "on", "eos", "next", "close", "open", "regex", "json_schema", "lark", "grammar",
    "input", "action", "output", "max_tokens", "sampling", "description",
]  # fmt: skip
TOP_KEYS = [
    "name", "model", "prompt", "sampling", "samples", "limits", "tests", "policy", "start",
    "llmos", "description",
]  # fmt: skip
ODD_KEYS = ["true", "1", "~", "<<", "''", "*a", "!foo k", "? x", "[a]", "{a: 1}", "k: v"]
TAGS = ["!!set ", "!!omap ", "!!pairs ", "!!map ", "!!seq ", "!foo ", "! "]
ANCHORS = ["&a ", "&b "]
ODD_CHARS = ["\t", "\x00", "\x85", "\u2028", "\ufeff", " #", "\n  ", "]", "&a "]


def mostly(plain: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    """A plain choice two times in three, an odd one otherwise."""
    return st.one_of(st.sampled_from(plain), st.sampled_from(plain), st.sampled_from(odd))


def _flow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Flow lists and mappings of `children`, maybe anchored, maybe tagged."""
    lists = st.lists(children, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
    pairs = st.lists(st.tuples(mostly(STATE_KEYS, ODD_KEYS), children), max_size=4)
    maps = pairs.map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}")
    return st.tuples(mostly([""], ANCHORS), mostly([""], TAGS), lists | maps).map("".join)


flow_values = st.recursive(
    st.tuples(mostly([""], ANCHORS), mostly(PLAIN_SCALARS, ODD_SCALARS)).map("".join),
    _flow,
    max_leaves=12,
)


@st.composite
def odd_documents(draw: st.DrawFn) -> str:
    """A spec with odd values, keys, tags, anchors and aliases in random places."""
    top = {"llmos": "1", "start": "s", "policy": "policy.yaml"}
    top.update(draw(st.lists(st.tuples(mostly(TOP_KEYS, ODD_KEYS), flow_values), max_size=3)))
    fields = draw(st.lists(st.tuples(mostly(STATE_KEYS, ODD_KEYS), flow_values), max_size=3))
    state = "{type: text, eos: e" + "".join(f", {k}: {v}" for k, v in fields) + "}"
    lines = [f"{k}: {v}" for k, v in top.items()]
    lines += ["states:", f"  s: {state}", "  e: {type: final}"]
    head = draw(mostly([""], ["\ufeff", "%YAML 1.1\n---\n", "--- &doc\n", "# c\n"]))
    tail = draw(mostly([""], ["---\nx: 1\n", "...\n", "# end\n", "--- *a\n"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = head + newline.join(lines) + newline + tail
    odd = draw(mostly([""], ODD_CHARS))
    at = draw(st.integers(0, len(text)))
    return text[:at] + odd + text[at:]


@st.composite
def deep_documents(draw: st.DrawFn) -> tuple[str, int]:
    """A spec with one deeply nested value; also how many levels it has in all."""
    depth = draw(st.integers(1, 3000))
    kind = draw(st.sampled_from(["flow list", "flow map", "mixed", "block map", "block list"]))
    closed = draw(st.booleans())
    if kind == "block map":
        depth = min(depth, 600)  # the indentation grows with the depth
        lines = "".join(" " * (i + 1) + "a:\n" for i in range(depth))
        return f"llmos: 1\nx:\n{lines}", depth + 1
    if kind == "block list":
        return "llmos: 1\nx:\n" + "- " * depth + "1\n", depth + 1
    opening = {"flow list": "[", "flow map": "{a: ", "mixed": "[{a: "}[kind]
    closing = {"flow list": "]", "flow map": "}", "mixed": "}]"}[kind]
    count = depth // len(closing)
    value = opening * count + "1" + (closing * count if closed else "")
    if draw(st.booleans()):  # at the top, or deep in a state's inline JSON schema
        return f"llmos: 1\nx: {value}\n", count * len(closing) + 1
    spec = SPEC.replace('regex: "[a-z0-9+*() ]+\\\\n"', f"json_schema: {value}")
    return spec, count * len(closing) + 3


@st.composite
def huge_documents(draw: st.DrawFn) -> str:
    """A spec with one huge scalar value or key, maybe aliased (the file stays under 1 MiB)."""
    char = draw(st.sampled_from(["a", "é", "😀", " ", "#", ":", "'", "\\"]))
    length = draw(st.integers(0, 900_000 // len(char.encode())))
    body = char * length
    styles = ["plain", "single", "double", "literal", "folded", "key", "aliased"]
    style = draw(st.sampled_from(styles))
    value = {
        "plain": f"description: x{body}\n",
        "single": "description: '" + body.replace("'", "''") + "'\n",
        "double": 'description: "' + body.replace("\\", "\\\\") + '"\n',
        "literal": "description: |\n  " + body + "\n",
        "folded": "description: >\n  " + body + "\n",
        "key": "? '" + body.replace("'", "''") + "'\n: 1\n",
        "aliased": "description: &d '" + body.replace("'", "''") + "'\n"
        "prompt: {system: *d, user: *d, assistant_prefix: *d}\n",
    }[style]
    return SPEC.replace("name: demo\n", value)


@st.composite
def wide_documents(draw: st.DrawFn) -> str:
    """A spec with up to 20,000 keys in one mapping (the limit is 10,000 values)."""
    count = draw(st.integers(0, 20_000))
    shape = draw(st.sampled_from(["k{}: 1", "'k{}': 1", "{}: 1", "s{}: {{type: final}}"]))
    pairs = "{" + ", ".join(shape.format(i) for i in range(count)) + "}"
    where = draw(st.sampled_from(["top", "states", "on", "tests", "json_schema"]))
    if where == "states":  # SPEC ends inside `states:`
        return SPEC + "".join(f"  k{i}: {{type: final}}\n" for i in range(count))
    if where == "on":
        return SPEC.replace('on: {"[CODE]": code}', f"on: {pairs}")
    if where == "json_schema":
        return SPEC.replace('regex: "[a-z0-9+*() ]+\\\\n"', f"json_schema: {pairs}")
    return SPEC + f"{'extra' if where == 'top' else 'tests'}: {pairs}\n"


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail instead of hanging when the block runs longer than `seconds`."""

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def checked_everywhere(path: Path, capsys: pytest.CaptureFixture[str]) -> list[Diagnostic]:
    """Check `path` with check_paths, llmos-check and load(): located problems, no exception."""
    capsys.readouterr()
    with time_limit(60):
        report, _ = check_paths([str(path)])
        code = main(["check", "--format", "json", str(path)])
        try:
            llmos_grammar.load(path)
        except LlmosError as exc:
            assert exc.location is not None and exc.location.line >= 1, exc
    for d in report.diagnostics:
        assert d.location.file and d.location.line >= 1 and d.message, d
    rows = json.loads(capsys.readouterr().out)["diagnostics"]
    assert code == (1 if report.errors else 0)
    assert [(r["file"], r["line"], r["message"]) for r in rows] == [
        (d.location.file, d.location.line, d.message) for d in report.diagnostics
    ]
    return report.diagnostics


def fuzz(examples: int) -> settings:
    """Bounded runs: few examples, each stopped by a deadline well above its usual second."""
    return settings(
        max_examples=examples,
        deadline=timedelta(seconds=30),
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


@fuzz(120)
@given(text=odd_documents())
def test_odd_yaml_always_ends_in_located_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = write(tmp_path, "")
    path.write_text(text, encoding="utf-8", newline="")
    checked_everywhere(path, capsys)


@fuzz(25)
@given(case=deep_documents())
def test_any_depth_is_stopped_where_the_limit_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[str, int]
) -> None:
    text, levels = case
    diagnostics = checked_everywhere(write(tmp_path, text), capsys)
    deep = [d for d in diagnostics if f"nested more than {MAX_DEPTH} levels" in d.message]
    assert len(deep) == (1 if levels > MAX_DEPTH else 0)
    if deep:
        assert diagnostics == deep


@fuzz(8)
@given(text=huge_documents())
def test_huge_scalars_and_keys_finish_quickly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    started = time.perf_counter()
    checked_everywhere(write(tmp_path, text), capsys)
    assert time.perf_counter() - started < 30  # three checks of about 1 s; quadratic: minutes


@fuzz(8)
@given(text=wide_documents())
def test_many_keys_finish_quickly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    started = time.perf_counter()
    checked_everywhere(write(tmp_path, text), capsys)
    assert time.perf_counter() - started < 30  # three checks of 0.5-2 s; quadratic: minutes


def test_llmos_check_on_a_document_nested_100_000_levels(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("llmos: 1\nstates: " + "[" * 100_000 + "\n")
    script = Path(sys.executable).with_name("llmos-check")  # the installed command
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-m", "llmos_grammar.cli.main", "check"]
    )
    result = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    located = [line for line in result.stdout.splitlines() if line.startswith(f"{path}:")]
    assert located == [
        f"{path}:2:72: error: lists and mappings nested more than 64 levels deep; "
        "flatten the document"
    ]
    assert "failed: 1 file(s), 1 error(s), 0 warning(s)" in result.stdout
    assert len(result.stdout) < 1000  # the 100,000-character line is shown as an excerpt
