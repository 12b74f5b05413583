"""`explain`: a text through a state's constraint, byte by byte, with what was allowed where
it stopped, for Lark, regex and JSON-schema states, closes and triggers."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos_grammar.constraints.backend import BackendName
from llmos_grammar.constraints.explain import Explanation, explain, explainable
from llmos_grammar.constraints.explain.marks import LEADS, mark_rules, marker
from llmos_grammar.spec.check import check_file
from tests.test_explain_helpers import machine

BACKENDS: tuple[BackendName, ...] = ("llguidance", "outlines")


def run(state: str, text: str, backend: BackendName | None = None) -> Explanation:
    return explain(machine(), state, text, backend)


def test_only_text_and_grammar_states_are_explained() -> None:
    assert explainable(machine()) == ["talk", "code", "say", "json", "word", "tag"]
    with pytest.raises(KeyError):
        run("run", "x")


# ---- Lark ------------------------------------------------------------------------------
def test_lark_accepted_whole_without_and_with_the_close() -> None:
    body = run("code", "print(1 + x)\n")
    assert (body.verdict, body.refused, body.taken) == ("accepted", None, 13)
    assert body.expected is not None and body.expected.close is True
    assert body.expected.forced == "[/CODE]"  # the grammar forces its close now
    closed = run("code", "print(1 + x)\n[/CODE]")
    assert (closed.verdict, closed.ends_at, closed.ended_by, closed.then) == (
        "accepted",
        20,
        "close",
        "run",
    )


def test_lark_prefix_says_what_may_follow() -> None:
    e = run("code", "print(1 +")
    assert e.verdict == "prefix" and e.refused is None and e.taken == 9
    assert e.expected is not None
    assert e.expected.starting == (("NUMBER", "atom"), ("NAME", "atom"))
    progress = e.expected.in_progress
    assert progress is not None and progress.text == b" +" and progress.complete == ("OP",)
    assert e.expected.close is False
    assert e.expected.chars == ("' '", "'0'-'9'", "'a'-'z'")


def test_lark_rejected_names_the_expected_lexemes() -> None:
    e = run("code", "print(1 + )\n")
    assert e.verdict == "rejected" and e.refused == 10 and e.taken == 10
    assert e.expected is not None
    assert e.expected.lexemes == ("NUMBER", "NAME")
    assert e.expected.by_rule() == {"atom": ["NUMBER", "NAME"]}
    assert e.expected.chars == ("'0'-'9'", "'a'-'z'")


def test_a_keyword_excluded_from_a_name_is_a_name_in_progress() -> None:
    e = run("code", "print(1 + if)\n")
    assert e.refused == 12  # "if" may still grow into a name ("iff"); ")" ends it as none
    assert e.expected is not None and e.expected.starting == ()
    progress = e.expected.in_progress
    assert progress is not None
    assert (progress.start, progress.text, progress.terminals, progress.complete) == (
        10,
        b"if",
        ("NAME",),
        (),
    )


def test_the_open_text_in_the_text_is_pointed_out() -> None:
    e = run("code", "\nprint(1)\n")
    assert e.refused == 0
    assert any("`open` text '\\n'" in note for note in e.notes)
    assert e.expected is not None and e.expected.forced == "print("


def test_a_close_ends_the_state_and_the_rest_is_the_next_states() -> None:
    e = run("code", "print(1)\n[/CODE] and more")
    assert (e.verdict, e.ends_at, e.then) == ("accepted", 16, "run")
    assert any("the 9 byte(s) after it" in note for note in e.notes)


# ---- a close delimiter inside a string ----------------------------------------------------
def test_a_close_inside_a_string_is_refused_with_the_reason() -> None:
    e = run("say", 'say "a [/SAY] b"\n[/SAY]')
    assert e.verdict == "rejected" and e.refused == 12  # the "]" that completes the close
    assert e.expected is not None and e.expected.in_progress is not None
    assert e.expected.in_progress.terminals == ("STRING",)
    assert any("written at byte 7" in n for n in e.notes)
    assert any("inside STRING" in n and "NO_CLOSE" in n for n in e.notes)
    fine = run("say", 'say "a [/SA b"\n[/SAY]')
    assert (fine.verdict, fine.ends_at) == ("accepted", 21)


# ---- regex ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_regex_accepted_prefix_rejected(backend: BackendName) -> None:
    whole = run("word", "ab cd\n", backend)
    assert whole.backend == backend and whole.verdict == "accepted"
    prefix = run("word", "ab c", backend)
    assert prefix.verdict == "prefix" and prefix.expected is not None
    assert prefix.expected.chars == ("'\\n'", "' '", "'a'-'z'")
    rejected = run("word", "ab1c\n", backend)
    assert (rejected.verdict, rejected.refused, rejected.taken) == ("rejected", 2, 2)
    assert rejected.expected is not None and rejected.expected.starting == ()


# ---- JSON schema -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_json_value_breaking_the_schemas_types(backend: BackendName) -> None:
    e = run("json", '{"name":"Ada","age":"ten"}', backend)
    assert e.verdict == "rejected" and e.refused == 20  # the quote that starts a string
    assert e.expected is not None
    assert e.expected.json_path == "$.age"
    assert e.expected.chars == ("'-'", "'0'-'9'")
    assert [(s.path, s.message) for s in e.schema_errors] == [
        ("$.age", "'ten' is not of type 'integer'")
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_json_accepted_and_prefix(backend: BackendName) -> None:
    whole = run("json", '{"name":"Ada","age":36}[/JSON]', backend)
    assert (whole.verdict, whole.ends_at, whole.schema_errors) == ("accepted", 30, ())
    prefix = run("json", '{"name":"Ada","ag', backend)
    assert prefix.verdict == "prefix" and prefix.expected is not None
    assert prefix.expected.json_path == "$ (key)"
    assert prefix.expected.forced.startswith('e"')  # the rest of the one key left


def test_json_whitespace_of_a_compact_state_is_explained() -> None:
    e = run("json", '{"name": "Ada"}')
    assert e.refused == 8
    assert any("json_whitespace is compact" in n for n in e.notes)


# ---- triggers ------------------------------------------------------------------------------
def test_where_each_trigger_fires_in_free_text() -> None:
    e = run("talk", "see [CODE]print(1)\n[/CODE] then [SAY]")
    assert e.kind == "text" and e.verdict == "accepted"
    assert [(h.trigger, h.start, h.fires) for h in e.triggers] == [
        ("[CODE]", 4, True),
        ("[SAY]", 32, False),
    ]
    assert (e.ends_at, e.ended_by, e.then) == (10, "[CODE]", "code")


def test_a_trigger_begun_at_the_end_of_free_text_is_forced() -> None:
    e = run("talk", "look [JS")
    assert [(h.trigger, h.start, h.fires, h.forced) for h in e.triggers] == [
        ("[JSON]", 5, True, "ON]")
    ]
    assert any("forces the rest ('ON]')" in n for n in e.notes)
    shared = run("talk", "look [")  # "[" begins every trigger: none is chosen
    assert shared.triggers == ()


def test_a_trigger_in_a_constrained_text_state() -> None:
    e = run("tag", "#abc [END] more")
    assert (e.verdict, e.ends_at, e.ended_by, e.then) == ("accepted", 10, "[END]", "end")
    refused = run("tag", "#ab1")
    assert refused.verdict == "rejected" and refused.refused == 3
    assert refused.expected is not None and refused.expected.end  # "#ab" is complete


# ---- the marked grammar ------------------------------------------------------------------------
def test_markers_are_bytes_no_utf8_text_holds() -> None:
    for index in (0, 1, 120, 121, 1330):
        data = marker(index)
        assert len(data) == 3 and all(b in LEADS for b in data)
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
    assert len({marker(i) for i in range(1331)}) == 1331


def test_mark_rules_marks_rule_lexemes_only() -> None:
    text = (
        'start: "a" NAME /[0-9]+/ data\n'
        "data: %json {\n"
        '  "type": "string"\n'
        "}\n"
        "NAME: /[a-z]+/\n"
        "%ignore /[ ]+/\n"
    )
    marked, names = mark_rules(text)
    assert names == (('"a"', "start"), ("NAME", "start"), ("/[0-9]+/", "start"))
    lines = marked.split("\n")
    assert lines[0] == (
        'start: ("a" | <[255]><[255]><[255]>) (NAME | <[255]><[255]><[254]>) '
        "(/[0-9]+/ | <[255]><[255]><[253]>) data"
    )
    assert lines[1:] == text.split("\n")[1:]  # the nested grammar, terminals, %ignore


def test_a_string_in_progress_after_many_lexemes() -> None:
    """Each marker is taken whole: a mask between a marker's bytes broke the rollback."""
    spec = Path(__file__).parents[1] / "examples" / "sqlite_qa" / "spec.yaml"
    checked = check_file(str(spec))
    assert checked.machine is not None
    text = "SELECT name FROM products WHERE name = 'a [/SQL] b'"
    e = explain(checked.machine, "query", text)
    assert e.refused == 42  # the derived grammar's strings hold no "["
    assert e.expected is not None and e.expected.in_progress is not None
    assert (e.expected.in_progress.start, e.expected.in_progress.terminals) == (39, ("STRING",))
    assert any("written at byte 42" in n for n in e.notes)
