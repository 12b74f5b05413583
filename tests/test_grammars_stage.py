"""The grammar stage API: validate, accepts, close_conflict and load_source."""

from __future__ import annotations

import os
from pathlib import Path

import lark
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmos_grammar import grammar
from llmos_grammar.errors import GrammarError, Location
from llmos_grammar.ir import GrammarKind, GrammarSource

LARK_PYTHON = Path(lark.__file__).parent / "grammars" / "python.lark"


def source(kind: GrammarKind, text: str, file: str = "g.lark") -> GrammarSource:
    return GrammarSource(kind, text, Location(file, 1, 1))


# ------------------------------------------------------------------------------- validate


def test_lark_python_grammar_names_the_template_and_where_it_is() -> None:
    loaded = grammar.load_source(LARK_PYTHON.name, base_dirs=[str(LARK_PYTHON.parent)])
    errors = [d for d in grammar.validate(loaded) if d.severity == "error"]
    assert len(errors) == 1
    lines = LARK_PYTHON.read_text().split("\n")
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("comprehension{"))
    assert "template" in errors[0].message
    assert errors[0].location == Location(str(LARK_PYTHON), line, 1)
    assert "lark accepts this grammar" in errors[0].hint


def test_broken_lark_syntax_has_line_and_column() -> None:
    (problem,) = grammar.validate(source("lark", 'start: a\na: "x" (\n'))
    assert problem.severity == "error"
    assert problem.location == Location("g.lark", 2, 9)


def test_inline_grammar_location_is_shifted_into_the_spec() -> None:
    inline = GrammarSource(
        "lark", 'start: a\na: "x" | b\n', Location("spec.yaml", 10, 5), column_offset=4
    )
    (problem,) = grammar.validate(inline)
    assert "unknown name" in problem.message and '"b"' in problem.message
    assert problem.location == Location("spec.yaml", 11, 14)  # "b" is column 10


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ('start: A\nA.2: "a"\n', "priority"),
        ("start: x\n%declare X\nx: X\n", "%declare"),
        ("start: A\nA: /a(?=b)/\n", "look-around"),
        ("start: x\n%import .other (x)\n", "%import"),
    ],
)
def test_unsupported_constructs_are_named(text: str, construct: str) -> None:
    (problem,) = grammar.validate(source("lark", text))
    assert problem.severity == "error"
    assert construct in problem.message
    assert problem.location.line == 2


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('start: x\nx: "a" | "b"\n%extend x: "c"\n', 3),
        ("start: A\nA: /(?P<n>a)(?P=n)/\n", 2),
    ],
)
def test_any_construct_lark_accepts_but_llguidance_rejects_is_named(text: str, line: int) -> None:
    (problem,) = grammar.validate(source("lark", text))
    assert problem.severity == "error"
    assert "does not support" in problem.message
    assert "lark accepts this grammar" in problem.hint
    assert problem.location.line == line


def test_broken_grammar_gets_no_lark_note() -> None:
    (problem,) = grammar.validate(source("lark", "start: (\n"))
    assert "lark accepts" not in problem.hint


def test_unknown_builtin_import_is_not_called_a_file_import() -> None:
    (problem,) = grammar.validate(source("lark", "%import common.NUMBR\nstart: NUMBR\n"))
    assert problem.severity == "error"
    assert "file" not in problem.message and "common.NUMBER" in problem.message


def test_bad_regex_is_an_error_at_its_column() -> None:
    (problem,) = grammar.validate(source("regex", "ab(c", "r.regex"))
    assert problem.severity == "error"
    assert "unclosed group" in problem.message
    assert problem.location == Location("r.regex", 1, 3)


def test_json_schema_that_is_not_json_has_line_and_column() -> None:
    (problem,) = grammar.validate(source("json_schema", '{\n  "type": "object",\n}', "s.json"))
    assert problem.severity == "error"
    assert problem.location == Location("s.json", 3, 1)


@pytest.mark.parametrize(
    "text", ['{"type": "strin"}', '{"type": "object", "required": "name"}', "[1, 2]"]
)
def test_invalid_json_schema_is_an_error(text: str) -> None:
    problems = grammar.validate(source("json_schema", text, "s.json"))
    assert problems and all(p.severity == "error" for p in problems)


def test_invalid_json_schema_points_at_the_key() -> None:
    text = '{\n  "type": "object",\n  "properties": {\n    "a": {"type": 5}\n  }\n}'
    (problem,) = grammar.validate(source("json_schema", text, "s.json"))
    assert "/properties/a/type" in problem.message
    assert problem.location == Location("s.json", 4, 11)


def test_llguidance_warning_becomes_a_warning() -> None:
    (problem,) = grammar.validate(source("lark", "start: <|endoftext|>\n"))
    assert problem.severity == "warning"
    assert "tokenizer" in problem.message


def test_valid_sources_have_no_diagnostics() -> None:
    assert grammar.validate(source("regex", "[a-z]+")) == []
    assert grammar.validate(source("json_schema", '{"type": "integer"}')) == []
    assert grammar.validate(source("lark", 'start: "a"+\n')) == []


# ------------------------------------------------------------------------------- accepts


def test_accepts_is_a_full_match() -> None:
    digits = source("regex", "[0-9]+")
    assert grammar.accepts(digits, "123")
    assert not grammar.accepts(digits, "12a")
    assert not grammar.accepts(digits, "")
    number = source("json_schema", '{"type": "integer", "minimum": 0}')
    assert grammar.accepts(number, "42")
    assert not grammar.accepts(number, "-1")


def test_accepts_raises_for_a_grammar_that_does_not_compile() -> None:
    with pytest.raises(GrammarError) as caught:
        grammar.accepts(source("lark", 'start: a\na: "x" | nope\n'), "x")
    assert "unknown name" in caught.value.message
    assert caught.value.location == Location("g.lark", 2, 10)
    assert caught.value.diagnostics


# ------------------------------------------------------------------------------- close_conflict


def test_close_conflict_proven_with_a_witness() -> None:
    strings = source("lark", 'start: "say " STR\nSTR: /"[^"\\n]*"/\n')
    problem = grammar.close_conflict(strings, "[/CODE]")
    assert problem is not None and problem.severity == "error"
    witness = problem.message.split("e.g. in ", 1)[1]
    text = eval(witness)  # the message quotes the witness with repr()
    assert "[/CODE]" in text and grammar.accepts(strings, text)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("regex", "[a-z\\[\\]/A-Z]+"),
        ("json_schema", '{"type": "object"}'),
        ("lark", 'start: "x" C "y"\nC: /[A-Z\\[\\]\\/]+/\n'),
        ("lark", 'start: "a" | "b" "[/CODE]" | "c"\n'),
    ],
)
def test_close_conflict_found_in_several_kinds(kind: GrammarKind, text: str) -> None:
    problem = grammar.close_conflict(source(kind, text), "[/CODE]")
    assert problem is not None and problem.severity == "error"


def test_close_conflict_suspected_in_an_unreached_terminal() -> None:
    deep = source("lark", 'start: "a"{30} S\nS: /"[^"]*"/\n')
    problem = grammar.close_conflict(deep, "[/CODE]")
    assert problem is not None and problem.severity == "warning"
    assert "S" in problem.message


def test_close_conflict_suspected_when_no_completion_is_found() -> None:
    unfinished = source("lark", 'start: "[/CODE]" "z"{40}\n')
    problem = grammar.close_conflict(unfinished, "[/CODE]")
    assert problem is not None and problem.severity == "warning"
    assert "no way to finish" in problem.message


@pytest.mark.parametrize(
    "text",
    [
        'start: "a"+\n',
        'start: A B\nA: "q"\nB: /[^\\n]+/ & ~/(?s:.*)\\[\\/(?s:.*)/\n',
        'start: "x" /[a-z]+/ "y"\n',
    ],
)
def test_close_conflict_clear(text: str) -> None:
    assert grammar.close_conflict(source("lark", text), "[/CODE]") is None


# ------------------------------------------------------------------------------- load_source


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "main.lark").write_text('start: "a" word\n%import .words (word)\n')
    (spec / "words.lark").write_text("start: word\nword: /[a-z]+/\n")
    (tmp_path / "outside.lark").write_text('start: "secret"\n')
    return spec


def test_load_source_reads_kinds_by_suffix(tree: Path) -> None:
    (tree / "n.regex").write_text("[0-9]+\n")
    (tree / "s.json").write_text('{"type": "integer"}')
    regex = grammar.load_source("n.regex", base_dirs=[str(tree)])
    assert regex.kind == "regex" and regex.text == "[0-9]+"
    assert regex.location == Location(str(tree / "n.regex"), 1, 1)
    assert grammar.load_source("s.json", base_dirs=[str(tree)]).kind == "json_schema"
    assert grammar.load_source("n.regex", "lark", base_dirs=[str(tree)]).kind == "lark"


def test_load_source_uses_the_first_folder_that_holds_the_file(tree: Path) -> None:
    loaded = grammar.load_source("python.lark", base_dirs=[str(tree), str(grammar.grammars_dir())])
    assert loaded.origin == str(grammar.grammars_dir() / "python.lark")


def test_import_of_a_file_is_inlined_and_maps_locations(tree: Path) -> None:
    loaded = grammar.load_source("main.lark", base_dirs=[str(tree)])
    assert grammar.validate(loaded) == []
    assert grammar.accepts(loaded, "ahello")
    (tree / "words.lark").write_text("word: /[a-z]+/ | nope\n")
    broken = grammar.load_source("main.lark", base_dirs=[str(tree)])
    (problem,) = grammar.validate(broken)
    assert problem.location.file == str(tree / "words.lark")
    assert problem.location.line == 1


def test_include_directive_and_diamond(tree: Path) -> None:
    (tree / "a.lark").write_text('%include "c.lark"\nx: C\n')
    (tree / "b.lark").write_text('%include "c.lark"\ny: C\n')
    (tree / "c.lark").write_text('C: "c"\n')
    (tree / "top.lark").write_text('start: x y\n%include "a.lark"\n%include "b.lark"\n')
    loaded = grammar.load_source("top.lark", base_dirs=[str(tree)])
    assert grammar.accepts(loaded, "cc")


@pytest.mark.parametrize(
    "files",
    [
        {"top.lark": '%include "top.lark"\nstart: "a"\n'},
        {
            "top.lark": "start: x\n%import .other (x)\n",
            "other.lark": '%include "top.lark"\nx: "a"\n',
        },
    ],
)
def test_include_cycle_is_a_clear_error(tree: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tree / name).write_text(text)
    with pytest.raises(GrammarError) as caught:
        grammar.load_source("top.lark", base_dirs=[str(tree)])
    assert "includes itself" in caught.value.message
    assert caught.value.location is not None and caught.value.location.line >= 1


def test_escape_with_dot_dot_is_refused(tree: Path) -> None:
    where = Location("spec.yaml", 4, 14)
    with pytest.raises(GrammarError) as caught:
        grammar.load_source("../outside.lark", base_dirs=[str(tree)], location=where)
    assert "outside the allowed folders" in caught.value.message
    assert caught.value.location == where


def test_absolute_path_outside_is_refused(tree: Path) -> None:
    with pytest.raises(GrammarError, match="outside"):
        grammar.load_source(str(tree.parent / "outside.lark"), base_dirs=[str(tree)])


def test_symlink_escape_is_refused(tree: Path) -> None:
    os.symlink(tree.parent / "outside.lark", tree / "link.lark")
    with pytest.raises(GrammarError, match="outside"):
        grammar.load_source("link.lark", base_dirs=[str(tree)])


def test_include_escape_is_refused(tree: Path) -> None:
    (tree / "top.lark").write_text('start: x\n%include "../outside.lark"\n')
    with pytest.raises(GrammarError, match="outside") as caught:
        grammar.load_source("top.lark", base_dirs=[str(tree)])
    assert caught.value.location == Location(str(tree / "top.lark"), 2, 1)


def test_missing_file(tree: Path) -> None:
    with pytest.raises(GrammarError, match="not found"):
        grammar.load_source("nope.lark", base_dirs=[str(tree)])


def test_non_utf8_file_points_at_the_bad_byte(tree: Path) -> None:
    (tree / "bad.lark").write_bytes(b'start: "a"\n// caf\xe9\n')
    with pytest.raises(GrammarError, match="not UTF-8") as caught:
        grammar.load_source("bad.lark", base_dirs=[str(tree)])
    assert caught.value.location == Location(str(tree / "bad.lark"), 2, 7)


def test_too_big_file(tree: Path) -> None:
    (tree / "big.lark").write_text('start: "a"\n' + "// x\n" * 300_000)
    with pytest.raises(GrammarError, match="1 MiB"):
        grammar.load_source("big.lark", base_dirs=[str(tree)])


def test_unknown_suffix_needs_a_kind(tree: Path) -> None:
    (tree / "g.txt").write_text("[0-9]+")
    with pytest.raises(GrammarError, match="kind"):
        grammar.load_source("g.txt", base_dirs=[str(tree)])
    assert grammar.load_source("g.txt", "regex", base_dirs=[str(tree)]).kind == "regex"


@pytest.fixture(scope="module")
def maze(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("maze")
    spec = root / "spec"
    (spec / "sub").mkdir(parents=True)
    (spec / "a.lark").write_text('start: "a"\n')
    (spec / "sub" / "b.lark").write_text('start: "b"\n')
    (root / "outside.lark").write_text('start: "out"\n')
    os.symlink(root / "outside.lark", spec / "link_out.lark")
    os.symlink(spec / "a.lark", spec / "sub" / "link_in.lark")
    os.symlink(root, spec / "sub" / "up")
    return spec


SEGMENTS = [
    "..",
    ".",
    "sub",
    "up",
    "a.lark",
    "b.lark",
    "outside.lark",
    "link_out.lark",
    "link_in.lark",
    "spec",
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4))
def test_load_source_never_leaves_its_folders(maze: Path, segments: list[str]) -> None:
    path = "/".join(segments)
    try:
        loaded = grammar.load_source(path, base_dirs=[str(maze)])
    except GrammarError:
        return
    assert loaded.origin is not None
    assert Path(loaded.origin).resolve().is_relative_to(maze.resolve())
    assert loaded.text in ('start: "a"\n', 'start: "b"\n')


def test_lark_text_reading() -> None:
    from llmos_grammar.grammar import larktext

    text = (
        '// comment: not a rule\nstart: a B "lit" /re+/\n    | C\na: "x"\n'
        'B: C "y"\nC: /[0-9]+/\n%ignore WS\n%import common.WS\n'
    )
    assert [name for name, _ in larktext.definitions(text)] == ["start", "a", "B", "C", "ignore"]
    lexemes = larktext.rule_lexemes(text)
    assert ("name", "B") in lexemes and ("name", "C") in lexemes and ("name", "WS") in lexemes
    assert ("literal", '"lit"') in lexemes and ("regex", "/re+/") in lexemes
    assert larktext.terminal_text(text) == 'B: C "y"\nC: /[0-9]+/\n%import common.WS'
    assert larktext.unquote('"a\\"b"') == 'a"b'
