"""`llmos-check` and the backends: explicit choices, fallbacks, differential checking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmos_grammar.cli.main import main
from llmos_grammar.constraints import choose
from llmos_grammar.constraints.differential import _compiled
from llmos_grammar.grammar import schema_regex
from llmos_grammar.spec.check import check_paths
from tests.specs import SPEC, write

STRING_STATE = """\
  code:
    type: grammar
    json_schema: {type: string, maxLength: 4}
    close: "[/CODE]"
    next: run
"""


def with_code(state: str, tests: str = "") -> str:
    start = SPEC.index("  code:\n")
    end = SPEC.index("  run:\n")
    return SPEC[:start] + state + SPEC[end:] + tests


def test_each_state_reports_its_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "json", str(write(tmp_path))]) == 0
    states = json.loads(capsys.readouterr().out)["states"]
    assert [(s["state"], s["backend"], s["requested"]) for s in states] == [
        ("code", "outlines", "auto")
    ]


def test_state_backend_overrides_the_spec(tmp_path: Path) -> None:
    spec = SPEC.replace("start: talk", "start: talk\nbackend: outlines").replace(
        "    close:", "    backend: llguidance\n    close:"
    )
    _, checked = check_paths([str(write(tmp_path, spec))])
    assert checked[0].backends["code"].backend == "llguidance"


def test_explicit_outlines_for_lark_is_an_error(tmp_path: Path) -> None:
    state = STRING_STATE.replace(
        "json_schema: {type: string, maxLength: 4}", 'lark: "start: \\"x\\""'
    )
    spec = with_code(state.replace("    close:", "    backend: outlines\n    close:"))
    report, _ = check_paths([str(write(tmp_path, spec))])
    [error] = report.errors
    assert error.code == "backend" and error.path == "states.code.backend"
    line = next(i for i, text in enumerate(spec.splitlines(), 1) if "backend: outlines" in text)
    assert "Lark" in error.message and error.location.line == line


def test_auto_fallback_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = STRING_STATE.replace("{type: string, maxLength: 4}", "{type: integer, minimum: 0}")
    assert main(["check", str(write(tmp_path, with_code(state)))]) == 0
    out = capsys.readouterr().out
    assert "state 'code' is enforced by llguidance" in out and "`minimum`" in out


def test_a_disagreement_is_an_error_with_the_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # without aligning its JSON strings, outlines-core accepts the escape \/ (llguidance not)
    monkeypatch.setattr(schema_regex, "JSON_ALIGN", ())
    choose._plan.cache_clear()
    _compiled.cache_clear()
    state = STRING_STATE.replace("    close:", "    backend: outlines\n    close:")
    tests = "tests:\n  code:\n    reject: ['\"a\\/b\"']\n"
    spec = with_code(state, tests)
    report, _ = check_paths([str(write(tmp_path, spec))])
    auto, _ = check_paths(
        [str(write(tmp_path, spec.replace("backend: outlines", "backend: auto")))]
    )
    choose._plan.cache_clear()
    _compiled.cache_clear()
    wrong = {d.path: d.message for d in report.errors if d.code == "backend-disagreement"}
    assert "'\"a\\\\/b\"'" in wrong["tests.code.reject[0]"]
    assert "Outlines accepts it" in wrong["tests.code.reject[0]"]
    assert "Outlines allows '/'" in wrong["states.code.backend"]
    assert auto.errors == []  # auto falls back to llguidance instead


def test_auto_falls_back_where_outlines_core_drops_a_continuation() -> None:
    from llmos_grammar.constraints import plan
    from llmos_grammar.errors import Location
    from llmos_grammar.ir import GrammarSource

    # outlines-core 0.2 leaves an accepting state only by tokens that end accepting
    how = plan(GrammarSource("regex", "a(?:bc)?", Location("<t>")), None)
    assert how.backend == "llguidance"
    assert how.reason == "after 'a', llguidance allows 'b' and Outlines does not"


def test_aligned_json_strings_agree(tmp_path: Path) -> None:
    tests = "tests:\n  code:\n    accept: ['\"a\\\\nb\"']\n    reject: ['\"a\\/b\"']\n"
    report, _ = check_paths([str(write(tmp_path, with_code(STRING_STATE, tests)))])
    assert report.diagnostics == []
