"""Handler settings are typed policy keys: checked, located, and read by the handlers."""

from __future__ import annotations

from pathlib import Path

from llmos_grammar.actions.interpreter import interpreter_argv
from llmos_grammar.errors import Diagnostic
from llmos_grammar.spec import load_policy
from llmos_grammar.spec.check import check_paths
from tests.specs import POLICY, SPEC, write


def diagnostics(tmp_path: Path, policy: str) -> list[Diagnostic]:
    report, _ = check_paths([str(write(tmp_path, SPEC, policy))])
    return report.diagnostics


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_misspelled_site_value_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    policy = POLICY.replace("timeout_s: 5", "timeout_s: 5\n    site: ful")
    found = [d for d in diagnostics(tmp_path, policy) if d.severity == "error"]
    assert len(found) == 1, found
    assert "did you mean 'full'?" in found[0].hint
    assert found[0].location.line == line_of(policy, "site: ful")


def test_an_option_of_a_builtin_handler_must_be_a_policy_key(tmp_path: Path) -> None:
    policy = POLICY.replace("timeout_s: 5", "timeout_s: 5\n    options: {site: full}")
    found = [d for d in diagnostics(tmp_path, policy) if d.code == "builtin-options"]
    assert len(found) == 1, found
    assert "policy key of its own" in found[0].message
    assert "`site: ...`" in found[0].hint
    assert found[0].location.line == line_of(policy, "options:")


def test_a_misspelled_option_gets_did_you_mean(tmp_path: Path) -> None:
    policy = POLICY.replace("timeout_s: 5", "timeout_s: 5\n    options: {json_feilds: [a]}")
    found = [d for d in diagnostics(tmp_path, policy) if d.code == "builtin-options"]
    assert len(found) == 1 and found[0].hint == "did you mean `json_fields:`?", found


def test_a_plugin_handler_keeps_its_free_form_options(tmp_path: Path) -> None:
    policy = POLICY.replace("handler: python", "handler: json:loads").replace(
        "timeout_s: 5", "timeout_s: 5\n    options: {anything: [1, 2]}"
    )
    found = diagnostics(tmp_path, policy)
    assert not [d for d in found if d.code == "builtin-options"], found


def test_a_key_for_another_handler_is_a_warning(tmp_path: Path) -> None:
    policy = POLICY.replace("timeout_s: 5", "timeout_s: 5\n    json_fields: [a.b]")
    found = [d for d in diagnostics(tmp_path, policy) if d.code == "ignored"]
    assert len(found) == 1 and "http handler" in found[0].message, found


def test_typed_keys_reach_the_compiled_policy(tmp_path: Path) -> None:
    policy = POLICY.replace("timeout_s: 5", "timeout_s: 5\n    site: none\n    cgroup: true")
    path = write(tmp_path, SPEC, policy)
    compiled = load_policy(str(path.parent / "policy.yaml"))
    action = next(iter(compiled.actions.values()))
    assert action.site == "none" and action.cgroup is True
    assert interpreter_argv(action)[-1] == "-S"


def test_the_shipped_http_policy_uses_the_typed_keys() -> None:
    shipped = load_policy(str(Path(__file__).parent.parent / "policies" / "http.yaml"))
    fetch = shipped.actions["fetch"]
    assert "info.version" in fetch.json_fields and not fetch.options
