"""The check and graph commands as a user runs them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from llmos_grammar.cli.main import main
from tests.specs import SPEC, write


def test_check_json_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = SPEC.replace("next: talk", "next: tlak").replace("eos: end", "eos: ned")
    assert main(["check", "--format", "json", str(write(tmp_path, spec))]) == 1
    out = json.loads(capsys.readouterr().out)
    rows = [d for d in out["diagnostics"] if d["code"] == "unknown-state"]
    assert len(rows) == 2 and all(r["line"] > 0 and r["column"] > 0 for r in rows)


def test_check_github_annotations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, SPEC.replace("next: talk", "next: tlak"))
    assert main(["check", "--format", "github", str(spec)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"::error file={spec},line=")
    assert "unknown state 'tlak'" in first


def test_check_text_shows_caret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, SPEC.replace("next: talk", "next: tlak"))
    assert main(["check", str(spec)]) == 1
    out = capsys.readouterr().out
    assert "    next: tlak\n" in out and "\n            ^" in out
    assert "failed: 1 file(s), 1 error(s)" in out


def test_strict_turns_warnings_into_failure(tmp_path: Path) -> None:
    spec = write(tmp_path, SPEC + "  orphan: {type: final}\n")
    assert main(["check", str(spec)]) == 0
    assert main(["check", "--strict", str(spec)]) == 1


def test_graph_mermaid_and_dot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(write(tmp_path))
    assert main(["graph", spec]) == 0
    mermaid = capsys.readouterr().out
    assert mermaid.startswith("flowchart TD")
    assert 's_talk -- "[CODE]" --> s_code' in mermaid
    assert 's_code -- "[/CODE]" --> s_run' in mermaid
    assert "action: python (python)" in mermaid
    assert main(["graph", "--format", "dot", spec]) == 0
    dot = capsys.readouterr().out
    assert '"talk" -> "code" [label="[CODE]"];' in dot
    assert '"end" [shape=doublecircle' in dot


def test_graph_of_a_broken_spec_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write(tmp_path, SPEC.replace("next: talk", "next: tlak"))
    assert main(["graph", str(spec)]) == 1
    assert "unknown state 'tlak'" in capsys.readouterr().err


def test_a_broken_spec_shows_every_problem_with_its_line_and_caret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write(tmp_path, SPEC.replace("next: talk", "next: tlak").replace("eos: end", "eos: ned"))
    assert main(["graph", str(spec)]) == 1
    err = capsys.readouterr().err.splitlines()
    firsts = [line for line in err if line.startswith("llmos: ")]
    assert len(firsts) == 2 and all("unknown state" in line for line in firsts)
    carets = [i for i, line in enumerate(err) if line.strip() == "^"]
    assert [err[i - 1].strip() for i in carets] == ["eos: ned", "next: tlak"]  # file order


def test_check_never_imports_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from llmos_grammar.cli.main import main; "
        f"rc = main(['check', {str(write(tmp_path))!r}]); "
        "sys.exit(rc if 'torch' not in sys.modules else 99)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_thousands_of_problems_on_one_long_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    triggers = ", ".join(f'"t{i}": talk' for i in range(6000))  # a 78,000-character line
    spec = write(tmp_path, SPEC.replace('on: {"[CODE]": code}', "on: {" + triggers + "}"))
    started = time.perf_counter()
    assert main(["check", str(spec)]) == 1
    assert time.perf_counter() - started < 15  # prefix check and printing stay linear
    out = capsys.readouterr().out.splitlines()
    assert "failed: 1 file(s), 5990 error(s), 2 warning(s)" in out  # all but t0..t9
    assert max(map(len, out)) < 250  # the line is shown as an excerpt around the caret
    at = out.index(next(line for line in out if "'t10' can never fire: 't1'" in line))
    excerpt, caret = out[at + 2], out[at + 3]  # after the hint
    assert excerpt.startswith("  ...") and excerpt.endswith("...")
    assert excerpt[len(caret) - 1 :].startswith('"t10": talk')


def test_run_without_a_task_needs_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["run", str(write(tmp_path))]) == 2
    assert "give a TASK" in capsys.readouterr().err


def test_shell_is_a_command_with_its_keys_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["shell", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--history" in out and "--engine" in out
