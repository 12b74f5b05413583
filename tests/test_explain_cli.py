"""`llmos-check --explain` as a user runs it: the text view, the JSON view, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmos_grammar.cli.main import main
from tests.test_docs import DOCS, run_page
from tests.test_explain_helpers import spec_path

Capture = pytest.CaptureFixture[str]


def explain(tmp_path: Path, state: str, text: str, *more: str) -> int:
    return main(["check", "--explain", str(spec_path(tmp_path)), state, text, *more])


def test_exit_codes_accepted_prefix_rejected(tmp_path: Path, capsys: Capture) -> None:
    assert explain(tmp_path, "code", "print(1)\n[/CODE]") == 0
    assert (
        "accepted: the state ends after byte 15, at its close (-> run)" in capsys.readouterr().out
    )
    assert explain(tmp_path, "code", "print(1") == 0
    assert "accepted as a prefix" in capsys.readouterr().out
    assert explain(tmp_path, "code", "print(1 + if)\n") == 1
    assert "rejected at byte 12 (line 1, column 13)" in capsys.readouterr().out


def test_the_refused_byte_has_a_caret_under_it(tmp_path: Path, capsys: Capture) -> None:
    assert explain(tmp_path, "code", "print(1 + 2)\nprint(3 +)\n") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "rejected at byte 13 (line 2, column 1): 'p' is not allowed"
    shown = lines.index("  print(3 +)")
    assert lines[shown + 1] == "  ^"
    assert '  may start here: "[/CODE]"' not in lines  # the close is not a lexeme of the body
    assert "  the close may follow here" in lines


def test_control_characters_are_shown_escaped(tmp_path: Path, capsys: Capture) -> None:
    assert explain(tmp_path, "word", "ab\x1b[2Jcd\n") == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out
    lines = out.splitlines()
    shown = lines.index("  ab\\x1b[2Jcd")
    assert lines[shown + 1] == "    ^"  # under the escape's backslash


def test_a_close_inside_a_string_in_text(tmp_path: Path, capsys: Capture) -> None:
    assert explain(tmp_path, "say", 'say "a [/SAY] b"\n[/SAY]') == 1
    out = capsys.readouterr().out
    assert "note: it is inside STRING, which may not contain the close" in out
    assert "in progress: '\"a [/SAY' from byte 4: not a whole STRING, only its start" in out


def test_a_trigger_state_lists_its_triggers(tmp_path: Path, capsys: Capture) -> None:
    assert explain(tmp_path, "talk", "see [CODE]print(1)\n[/CODE] then [SAY]") == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("triggers:")
    assert out[at + 1] == "  '[CODE]' at byte 4 (line 1, column 5) -> code: fires"
    assert out[at + 2] == "  '[SAY]' at byte 32 (line 2, column 14) -> say: after the state ended"


def test_json_output_shape(tmp_path: Path, capsys: Capture) -> None:
    text = '{"name":"Ada","age":"ten"}'
    assert explain(tmp_path, "json", text, "--format", "json") == 1
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {
        "spec",
        "state",
        "kind",
        "backend",
        "close",
        "open",
        "text",
        "verdict",
        "whole",
        "accepted_bytes",
        "accepted_prefix",
        "refused",
        "expected",
        "ends_at",
        "ended_by",
        "then",
        "triggers",
        "schema_errors",
        "notes",
        "tokens",
    }
    assert (out["state"], out["kind"], out["close"], out["text"]) == (
        "json",
        "json_schema",
        "[/JSON]",
        text,
    )
    assert (out["verdict"], out["whole"], out["accepted_bytes"]) == ("rejected", False, 20)
    assert out["refused"] == {"byte": 20, "line": 1, "column": 21, "char": '"'}
    assert out["expected"]["json_path"] == "$.age"
    assert out["expected"]["chars"] == ["'-'", "'0'-'9'"]
    assert out["schema_errors"] == [{"path": "$.age", "message": "'ten' is not of type 'integer'"}]
    assert out["tokens"] is None and out["triggers"] == []


def test_json_output_of_a_prefix_and_of_triggers(tmp_path: Path, capsys: Capture) -> None:
    assert explain(tmp_path, "code", "print(1 +", "--format", "json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["verdict"], out["whole"], out["refused"]) == ("prefix", False, None)
    assert out["expected"]["starting"] == ["NUMBER", "NAME"]
    assert out["expected"]["starting_by_rule"] == {"atom": ["NUMBER", "NAME"]}
    assert out["expected"]["in_progress"] == {
        "start": 7,
        "text": " +",
        "terminals": ["OP"],
        "complete": ["OP"],
    }
    assert explain(tmp_path, "talk", "go [WORD]", "--format", "json") == 0
    hits = json.loads(capsys.readouterr().out)["triggers"]
    assert hits == [
        {"trigger": "[WORD]", "target": "word", "start": 3, "end": 9, "fires": True, "forced": ""}
    ]


def test_explain_file(tmp_path: Path, capsys: Capture) -> None:
    text = tmp_path / "text.txt"
    text.write_bytes(b"print(2 * 3)\n")
    spec = str(spec_path(tmp_path))
    assert main(["check", "--explain-file", spec, "code", str(text)]) == 0
    assert "accepted as a whole (13 bytes)" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path: Path, capsys: Capture) -> None:
    spec = str(spec_path(tmp_path))
    assert main(["check", "--explain", spec, "nope", "x"]) == 2
    err = capsys.readouterr().err
    assert "'nope' is not a state of this spec" in err
    assert "text and grammar states: talk, code, say, json, word, tag" in err
    assert main(["check", "--explain", spec, "run", "x"]) == 2
    assert "'run' is an action state" in capsys.readouterr().err
    assert main(["check", "--explain", str(tmp_path / "none.yaml"), "code", "x"]) == 2
    assert "none.yaml: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"print(1)\nx\xff\n")
    assert main(["check", "--explain-file", spec, "code", str(bad)]) == 2
    assert f"{bad}:2:2: the text is not UTF-8 (byte 0xff)" in capsys.readouterr().err
    assert main(["check", "--explain-file", spec, "code", str(tmp_path / "gone.txt")]) == 2
    assert "gone.txt: cannot read the text" in capsys.readouterr().err
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"x" * ((1 << 20) + 1))
    assert main(["check", "--explain-file", spec, "code", str(huge)]) == 2
    assert "huge.txt: the text is over 1 MiB" in capsys.readouterr().err
    assert main(["check", "--tokens", spec]) == 2
    assert "--tokens and --model go with --explain" in capsys.readouterr().err


def test_a_broken_spec_is_a_usage_error_with_its_diagnostics(
    tmp_path: Path, capsys: Capture
) -> None:
    spec = spec_path(tmp_path)
    spec.write_text(spec.read_text().replace("next: run", "next: rnu"))
    assert main(["check", "--explain", str(spec), "code", "x"]) == 2
    assert "unknown state 'rnu'" in capsys.readouterr().err


def test_explain_never_imports_torch(tmp_path: Path) -> None:
    spec = str(spec_path(tmp_path))
    code = (
        "import sys; from llmos_grammar.cli.main import main; "
        f"rc = main(['check', '--explain', {spec!r}, 'code', 'print(1 + if)']); "
        "sys.exit(rc if 'torch' not in sys.modules else 99)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert result.returncode == 1, result.stderr


def test_the_explain_page_runs_as_written(tmp_path: Path) -> None:
    assert run_page(DOCS / "explain.md", tmp_path) == 8
