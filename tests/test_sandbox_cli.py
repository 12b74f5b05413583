"""`llmos exec` and `llmos sandbox doctor` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmos_grammar.cli.main import main

POLICY = """llmos-policy: 1
actions:
  python:
    handler: python
    timeout_s: 2
    memory_mb: 256
  careful:
    handler: python
    confirm: ask
  shell:
    handler: shell
    commands: [echo]
"""


@pytest.fixture()
def policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return str(path)


def _exec(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main(["exec", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_exec_runs_a_file_and_prints_json(
    policy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code_file = tmp_path / "code.py"
    code_file.write_text("print(sum(range(101)))\n")
    code, out = _exec(capsys, "--policy", policy, "--action", "python", str(code_file))
    assert code == 0 and out["stdout"] == "5050\n" and out["ok"] is True
    assert out["limits"]["timeout_s"] == 2 and isinstance(out["unenforced"], list)


def test_exec_reads_stdin_and_reports_failure(
    policy: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("import time\ntime.sleep(10)\n"))
    code, out = _exec(capsys, "--policy", policy, "--action", "python", "-")
    assert code == 1 and out["timed_out"] is True and out["status"] == "timed out"


def test_exec_refusals_exit_3(
    policy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code_file = tmp_path / "code.py"
    code_file.write_text("print(1)\n")
    code, out = _exec(capsys, "--policy", policy, "--action", "careful", str(code_file))
    assert code == 3 and "approv" in str(out["refused"])  # no terminal: the answer is no
    code, out = _exec(capsys, "--policy", policy, "--action", "careful", "--yes", str(code_file))
    assert code == 0 and out["stdout"] == "1\n"
    code_file.write_text("echo hi; id\n")
    code, out = _exec(capsys, "--policy", policy, "--action", "shell", str(code_file))
    assert code == 3 and "'id'" in str(out["refused"])


def test_exec_bad_input_is_a_clear_error(policy: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exec", "--policy", policy, "--action", "nope", "/dev/null"]) == 1
    assert "no action 'nope'" in capsys.readouterr().err
    assert main(["exec", "--policy", policy, "--action", "python", "/no/such/file"]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["exec", "--policy", "/no/such/policy.yaml", "--action", "python"]) != 0
    assert "Traceback" not in capsys.readouterr().err


def test_doctor_lists_layers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "doctor", "--json", "--runs", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layers"]["timeout"]["works"] is True
    assert set(data["layers"]) >= {"pid_namespace", "network", "filesystem", "uid", "disk"}
    assert data["trivial_action"]["ok"] is True
    assert main(["sandbox", "doctor", "--runs", "0"]) == 0
    text = capsys.readouterr().out
    assert "pid_namespace" in text and ("yes" in text)
