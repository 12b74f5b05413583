"""The NO_CLOSE hook: shipped grammars keep their strings, comments and words free of the
close delimiter of the state that uses them, whatever it is; the checker proves it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmos_grammar import grammar
from llmos_grammar.errors import Location
from llmos_grammar.grammar.noclose import exclude_close, has_hook, hook_users, regex_literal
from llmos_grammar.ir import GrammarSource
from llmos_grammar.spec.check import check_paths
from tests.specs import POLICY, write

CORPUS = Path(__file__).parent / "corpus" / "python"
CLOSES = ("[/CODE]", "```", "</code>")
SAMPLES = {
    "python.lark": [p.read_text() for p in sorted(CORPUS.glob("*.py"))],
    "sql_select.lark": [
        "SELECT name, count(*) AS n FROM orders GROUP BY name ORDER BY n DESC LIMIT 5",
        "SELECT 'a[/b' || \"col\" FROM t WHERE x LIKE '%`%' -- note\n",
        "WITH r AS (SELECT 1 AS x) SELECT x FROM r;",
    ],
    "shell.lark": ["seq 1 10 | wc -l", "echo 'a[/b' \"c\" > out.txt && cat out.txt", "ls -la\n"],
    "tool_call.lark": [
        '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}',
        '{"name":"search","arguments":{"q":"x","opts":[1,2.5,true,null,{"a":"b"}]}}',
        '{"name": "noop", "arguments": {}}',
    ],
}
# where each grammar lets a close delimiter stand inside a lexeme: (before, after)
HOLES = {
    "python.lark": [('s = "', '"\n'), ("x = 1  # ", "\n"), ("t = '''", "'''\n")],
    "sql_select.lark": [("SELECT '", "'"), ("SELECT 1 -- ", "\n"), ('SELECT "', '" FROM t')],
    "shell.lark": [("echo '", "'"), ('echo "', '"')],
    "tool_call.lark": [('{"name": "x", "arguments": {"a": "', '"}}')],
}


def shipped(name: str) -> GrammarSource:
    return grammar.load_source(name, base_dirs=[str(grammar.grammars_dir())])


@pytest.fixture(scope="module")
def sources() -> dict[tuple[str, str], GrammarSource]:
    return {(n, c): exclude_close(shipped(n), c) for n in SAMPLES for c in CLOSES}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_shipped_grammar_has_the_hook(name: str) -> None:
    source = shipped(name)
    assert has_hook(source) and hook_users(source)
    assert exclude_close(source, "") is source  # no close, nothing to exclude


@pytest.mark.parametrize("close", CLOSES)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_shipped_grammar_cannot_produce_the_close(
    sources: dict[tuple[str, str], GrammarSource], name: str, close: str
) -> None:
    source = sources[name, close]
    assert source.excludes == close
    assert grammar.validate(source) == []
    assert grammar.close_conflict(source, close) is None
    for text in SAMPLES[name]:
        assert grammar.accepts(source, text), text
    for before, after in HOLES[name]:
        assert grammar.accepts(source, before + "x" + after)
        assert not grammar.accepts(source, before + close + after)


@pytest.mark.parametrize("close", ["```", "</code>"])
def test_without_the_exclusion_the_checker_finds_the_close(close: str) -> None:
    conflict = grammar.close_conflict(shipped("python.lark"), close)
    assert conflict is not None and conflict.severity == "error"
    assert close in conflict.message


def test_a_grammar_without_the_hook_is_unchanged() -> None:
    source = GrammarSource("lark", 'start: /"[^"]*"/\n', Location("<inline>"))
    assert exclude_close(source, "```") is source
    conflict = grammar.close_conflict(source, "```")
    assert conflict is not None and "```" in conflict.message


def test_the_hook_keeps_lines_in_place() -> None:
    source = shipped("python.lark")
    done = exclude_close(source, "```\n")
    assert done.text.count("\n") == source.text.count("\n")
    assert "NO_CLOSE: ~/(?s:.*)\\x{60}\\x{60}\\x{60}\\x{a}(?s:.*)/" in done.text


def test_regex_literal_escapes_everything_but_letters_and_digits() -> None:
    assert regex_literal("[/CODE]") == "\\x{5b}\\x{2f}CODE\\x{5d}"
    assert regex_literal("é/") == "\\x{e9}\\x{2f}"


TEXT = st.text(st.sampled_from("ab[/`<>code \"'#\\"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(close=st.sampled_from(CLOSES), left=TEXT, right=TEXT)
def test_python_strings_and_comments_never_hold_the_close(
    sources: dict[tuple[str, str], GrammarSource], close: str, left: str, right: str
) -> None:
    source = sources["python.lark", close]
    inside = (left + close + right).replace("\\", "")
    for text in (f"x = {json.dumps(inside)}\n", f"y = 1  # {inside.replace(chr(10), ' ')}\n"):
        assert not grammar.accepts(source, text)


@settings(max_examples=60, deadline=None)
@given(close=st.sampled_from(CLOSES), text=TEXT)
def test_python_strings_without_the_close_are_accepted(
    sources: dict[tuple[str, str], GrammarSource], close: str, text: str
) -> None:
    inside = text.replace("\\", "")
    line = f"x = {json.dumps(inside)}\n"
    assert grammar.accepts(sources["python.lark", close], line) is (close not in inside)


FENCED = """\
llmos: 1
policy: policy.yaml
start: talk
states:
  talk:
    type: text
    on: {"```python": code}
    eos: end
  code:
    type: grammar
    grammar: python.lark
    open: "\\n"
    close: "```"
    next: run
  run:
    type: action
    action: python
    input: code
    next: talk
  end: {type: final}
"""


def test_check_reports_the_exclusion_it_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmos_grammar.cli.main import main

    spec = write(tmp_path, FENCED, POLICY)
    report, checked = check_paths([str(spec)])
    assert report.diagnostics == []
    (info,) = checked[0].exclusions()
    assert (info.state, info.close, info.terminals) == ("code", "```", ("STRING", "COMMENT"))
    assert info.location.line == FENCED.splitlines().index('    close: "```"') + 1
    assert main(["check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "info: state 'code': close '```' excluded from STRING, COMMENT (NO_CLOSE)" in out
    assert main(["check", "--format", "json", str(spec)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["exclusions"][0]["close"] == "```" and data["diagnostics"] == []
    assert main(["check", "-q", str(spec)]) == 0
    assert capsys.readouterr().out == ""


def test_a_close_the_grammar_can_still_produce_is_an_error(tmp_path: Path) -> None:
    # the hook covers strings and comments; "=" is an operator of the language itself
    spec = write(tmp_path, FENCED.replace('close: "```"', 'close: " = "'), POLICY)
    report, _ = check_paths([str(spec)])
    (conflict,) = report.errors
    assert conflict.code == "close-conflict" and conflict.path == "states.code.close"
