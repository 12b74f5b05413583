"""The documentation site: `mkdocs build --strict`, the reference generated from the code
(every flag and key described), and the tutorial executed block by block."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_hooks"))

from llmos_docs import (  # noqa: E402
    cli_ref,
    codes,
    diagnostics_inputs,
    diagnostics_ref,
    exits_ref,
    render,
    schema_ref,
)

QUIET = {"NO_MKDOCS_2_WARNING": "1"}


def _mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is not installed: `bash setup.sh` installs the docs extra")


# ---- the site ------------------------------------------------------------------------


def test_site_builds_strict(tmp_path: Path) -> None:
    """Broken links, missing pages, unknown markers and docstring problems fail the build."""
    _mkdocs()
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, **QUIET},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "--engine-arg" in cli and "llmos sandbox doctor" in cli
    assert "json_fields" in (site / "reference" / "policy" / "index.html").read_text()
    assert "EXIT_BUDGET" in (site / "reference" / "exit-status" / "index.html").read_text()
    assert "unknown-state" in (site / "reference" / "diagnostics" / "index.html").read_text()
    examples = (site / "examples" / "index.html").read_text()
    assert examples.count('class="mermaid"') == len(list((ROOT / "examples").glob("*/spec.yaml")))
    assert "Runtime" in (site / "reference" / "api" / "index.html").read_text()
    assert "Unreleased" in (site / "changelog" / "index.html").read_text()


def test_llmos_docs_serves_the_site() -> None:
    """`llmos docs --addr` serves the built site on the loopback address until stopped."""
    _mkdocs()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "llmos_grammar.cli.main", "docs", "--addr", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        page = _wait_for_page(f"http://127.0.0.1:{port}/tutorial/", server, deadline_s=600)
        assert "Tutorial: your first spec" in page
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def _wait_for_page(url: str, server: subprocess.Popen[bytes], deadline_s: float) -> str:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"llmos docs exited {server.returncode}: {server.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return str(answer.read().decode("utf-8"))
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {deadline_s} s")


def test_llmos_docs_without_a_checkout_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmos_grammar.cli import docs
    from llmos_grammar.cli.main import main

    monkeypatch.setattr(docs, "CONFIG", tmp_path / "mkdocs.yml")
    assert main(["docs"]) == 2
    assert "the site is built from a checkout" in capsys.readouterr().err


def test_an_unknown_marker_fails_the_build() -> None:
    with pytest.raises(render.UnknownMarker, match="no generator 'nope'"):
        render.fill("text\n<!-- generated: nope -->\n", "page.md")


# ---- the reference is generated --------------------------------------------------------


def test_every_cli_flag_has_a_description() -> None:
    assert cli_ref.undocumented() == []


def test_a_flag_without_a_description_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmos_grammar.cli import main

    real = main.build_parser

    def with_a_new_flag(only: str | None = None) -> argparse.ArgumentParser:
        parser = real(only)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices["run"].add_argument("--brand-new")
        return parser

    monkeypatch.setattr(main, "build_parser", with_a_new_flag)
    assert cli_ref.undocumented() == ["llmos run --brand-new"]


def test_the_cli_reference_lists_every_command_and_flag() -> None:
    from llmos_grammar.cli.main import COMMANDS, build_parser

    page = cli_ref.render()
    for name in COMMANDS:
        assert f"## `llmos {name}`" in page
    for command in cli_ref.commands(build_parser()):
        for action in cli_ref.flags(command.parser):
            for flag in action.option_strings:
                assert f"`{flag}`" in page, flag
            assert (action.help or "").split()[0] in page
    assert "Also `llmos-run`." in page and "Also `llmos-check`." in page


@pytest.mark.parametrize("kind", ["spec", "policy"])
def test_every_schema_key_has_a_description(kind: str) -> None:
    assert schema_ref.undocumented(kind) == []


def test_a_schema_key_without_a_description_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = json.loads((schema_ref.SCHEMAS / "policy.schema.json").read_text())
    schema["$defs"]["action"]["properties"]["brand_new"] = {"type": "integer"}
    (tmp_path / "policy.schema.json").write_text(json.dumps(schema))
    monkeypatch.setattr(schema_ref, "SCHEMAS", tmp_path)
    assert schema_ref.undocumented("policy") == ["policy: actions.NAME.brand_new"]


@pytest.mark.parametrize("kind", ["spec", "policy"])
def test_the_key_reference_lists_every_key_with_its_default(kind: str) -> None:
    page = schema_ref.render(kind)
    for section in schema_ref.sections(kind):
        for key in section.keys:
            assert f"| `{key.name}` |" in page
    if kind == "policy":
        assert "| `memory_mb` | integer | `256` |" in page
        assert "| `handler` | string | required |" in page
    else:
        assert "| `wall_s` | number | `300.0` |" in page


def test_the_exit_table_has_every_status() -> None:
    from llmos_grammar.cli import exits

    constants = {n: v for n, v in vars(exits).items() if n.startswith("EXIT_")}
    listed = {name: value for name, value, _ in exits_ref.statuses()}
    assert listed == constants
    assert all(meaning for _, _, meaning in exits_ref.statuses())


def test_every_diagnostic_code_has_an_example_that_reports_it() -> None:
    found = codes.codes()
    assert {"unknown-state", "close-conflict", "schema", "builtin-options"} <= set(found)
    missing = set(found) - set(diagnostics_inputs.EXAMPLES) - set(diagnostics_inputs.UNREACHED)
    assert not missing, f"add an example to docs/_hooks/llmos_docs/diagnostics_inputs.py: {missing}"
    # codes named after an error class come from the loader, not from a literal
    loader = {c for c in diagnostics_inputs.EXAMPLES if c[0].isupper()}
    for code in sorted(set(found) & set(diagnostics_inputs.EXAMPLES) | loader):
        checked = diagnostics_ref.check(code)
        assert code in checked.codes, (code, checked.output)
        assert checked.output.strip() and "Traceback" not in checked.output


def test_a_new_code_in_the_source_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "llmos_grammar"
    (package / "spec").mkdir(parents=True)
    (package / "spec" / "new.py").write_text(
        "def f(doc):\n"
        "    return [Diagnostic('error', 'm', doc.loc(()), '', 'brand-new')]\n"
        "def g(self):\n"
        "    self.warn('m', 'brand-newer')\n"
        "def warn(self, message, code):\n"
        "    pass\n"
    )
    monkeypatch.setattr(codes, "PACKAGE", package)
    assert set(codes.codes()) == {"brand-new", "brand-newer"}


# ---- the tutorial -----------------------------------------------------------------------

FENCE = re.compile(
    r"^(?P<fence>`{3,})(?P<lang>[\w-]*)(?P<attrs>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
DIRECTIVE = re.compile(r"<!-- tutorial: (?P<what>.+?) -->\s*\Z")
TITLE = re.compile(r'title="(?P<path>[^"]+)"')


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, with the `<!-- tutorial: ... -->` line right above it."""

    lang: str
    attrs: str
    body: str
    directive: str


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found, end = [], 0
    for match in FENCE.finditer(text):
        before = DIRECTIVE.search(text[end : match.start()])
        directive = before.group("what") if before else ""
        found.append(Block(match["lang"], match["attrs"], match["body"], directive))
        end = match.end()
    return found


def commands(body: str) -> list[tuple[str, str]]:
    """The `$ command` lines of a console block, each with the output shown under it."""
    found: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line)
    return [(command, "\n".join(lines)) for command, lines in found]


def matches(shown: str, printed: str) -> bool:
    """`printed` is `shown`, where a line `...` stands for any lines and `...` inside a line
    for any text; trailing spaces and blank lines do not count."""
    pattern = ""
    for line in shown.rstrip().splitlines():
        if line.strip() == "...":
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += ".*?".join(re.escape(p) for p in line.rstrip().split("...")) + r"\n"
    lines = "".join(line.rstrip() + "\n" for line in printed.rstrip().splitlines())
    return re.fullmatch(pattern, lines, re.DOTALL) is not None


def test_matching_shown_output() -> None:
    assert matches("a\n...\nd", "a\nb\nc\nd\n")
    assert matches("took ... s", "took 1.5 s  \n\n")
    assert not matches("a\nd", "a\nb\nd")
    assert not matches("exit 0", "exit 1")


def _run(command: str, folder: Path, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=900,
    )
    return done.returncode, done.stdout


def run_page(page: Path, folder: Path) -> int:
    """Write every file of a page and run every command, in order, in `folder`; compare
    each command's output with the page's unless it comes from the model. Returns how
    many commands ran."""
    (folder / ".venv").symlink_to(ROOT / ".venv")
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    last_output, ran = "", 0
    for block in blocks(page):
        title = TITLE.search(block.attrs)
        if title:
            path = folder / title["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            mode = "a" if 'append="true"' in block.attrs else "w"
            with path.open(mode, encoding="utf-8") as handle:
                handle.write(block.body)
        elif block.lang == "bash":
            status, output = _run(block.body, folder, env)
            assert status == 0, (block.body, output)
        elif block.lang == "console":
            expected = 1 if block.directive == "exit 1" else 0
            for command, shown in commands(block.body):
                status, output = _run(command, folder, env)
                ran += 1
                assert status == expected, (command, status, output)
                if block.directive != "output varies":
                    assert matches(shown, output), (
                        f"$ {command}\nshown:\n{shown}\nprinted:\n{output}"
                    )
                last_output = output
        elif block.lang == "mermaid":
            assert block.body.rstrip() == last_output.rstrip(), "the diagram is not the graph shown"
    return ran


@pytest.mark.model
def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    assert run_page(DOCS / "tutorial.md", tmp_path) >= 10


def test_the_plugin_guide_runs_as_written(tmp_path: Path) -> None:
    assert run_page(DOCS / "guides" / "plugins.md", tmp_path) == 3
