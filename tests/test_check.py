"""Each check of `llmos-check` catches what it claims, at the right place."""

from __future__ import annotations

from pathlib import Path

from llmos_grammar.errors import Diagnostic
from llmos_grammar.spec.check import check_paths
from tests.specs import POLICY, SPEC, write


def diagnostics(tmp_path: Path, spec: str = SPEC, policy: str = POLICY) -> list[Diagnostic]:
    report, _ = check_paths([str(write(tmp_path, spec, policy))])
    return report.diagnostics


def only(found: list[Diagnostic], code: str) -> Diagnostic:
    matching = [d for d in found if d.code == code]
    assert len(matching) == 1, found
    return matching[0]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_reference_spec_is_clean(tmp_path: Path) -> None:
    assert diagnostics(tmp_path) == []


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    spec = SPEC.replace("    close:", "    clsoe:")
    found = diagnostics(tmp_path, spec)
    unknown = next(d for d in found if "unknown key" in d.message)
    assert unknown.hint == "did you mean 'close'?"
    assert unknown.location.line == line_of(spec, "clsoe")
    assert unknown.location.column == 5
    assert unknown.path == "states.code.clsoe"


def test_wrong_type_is_located(tmp_path: Path) -> None:
    spec = SPEC.replace("type: grammar", "type: grammar\n    max_tokens: lots")
    d = only(diagnostics(tmp_path, spec), "schema")
    assert "not of type integer" in d.message and d.path == "states.code.max_tokens"
    assert d.location.line == line_of(spec, "max_tokens: lots")


def test_unknown_state_reference(tmp_path: Path) -> None:
    spec = SPEC.replace("next: talk", "next: tlak")
    d = only(diagnostics(tmp_path, spec), "unknown-state")
    assert d.message == "unknown state 'tlak'" and d.hint == "did you mean 'talk'?"
    assert (d.location.line, d.location.column) == (line_of(spec, "next: tlak"), 11)


def test_unknown_start(tmp_path: Path) -> None:
    d = only(diagnostics(tmp_path, SPEC.replace("start: talk", "start: nowhere")), "unknown-state")
    assert d.path == "start"


def test_samples_vote_names_a_state(tmp_path: Path) -> None:
    spec = SPEC.replace("start: talk", "start: talk\nsamples: {n: 5, vote: tlak}")
    d = only(diagnostics(tmp_path, spec), "unknown-state")
    assert d.path == "samples.vote" and d.hint == "did you mean 'talk'?"
    assert d.location.line == line_of(spec, "samples:")


def test_samples_compile_into_the_machine(tmp_path: Path) -> None:
    from llmos_grammar import load

    spec = SPEC.replace("start: talk", "start: talk\nsamples: {n: 5, temperature: 0.5}")
    machine = load(write(tmp_path, spec))
    assert (machine.samples.n, machine.samples.temperature, machine.samples.vote) == (5, 0.5, None)


def test_unreachable_state_is_a_warning(tmp_path: Path) -> None:
    spec = SPEC + "  orphan:\n    type: final\n"
    d = only(diagnostics(tmp_path, spec), "unreachable-state")
    assert d.severity == "warning" and d.location.line == line_of(spec, "orphan:")


def test_state_that_cannot_reach_a_final_state(tmp_path: Path) -> None:
    spec = SPEC.replace("    eos: end\n", "").replace("next: talk", "next: code")
    found = [d for d in diagnostics(tmp_path, spec) if d.code == "dead-end"]
    assert {d.path for d in found} == {"states.talk", "states.code", "states.run"}
    assert all(d.severity == "error" for d in found)


def test_no_final_state(tmp_path: Path) -> None:
    spec = SPEC.replace("    type: final\n", "    type: text\n")
    assert only(diagnostics(tmp_path, spec), "no-final").severity == "error"


def test_prefix_overlapping_triggers(tmp_path: Path) -> None:
    spec = SPEC.replace('on: {"[CODE]": code}', 'on: {"[CODE]": code, "[CODE]X": code}')
    d = only(diagnostics(tmp_path, spec), "trigger-prefix")
    assert "'[CODE]X' can never fire" in d.message


def test_empty_trigger(tmp_path: Path) -> None:
    spec = SPEC.replace('on: {"[CODE]": code}', 'on: {"[CODE]": code, "": code}')
    assert only(diagnostics(tmp_path, spec), "empty-trigger").severity == "error"


def test_whitespace_trigger_is_allowed(tmp_path: Path) -> None:
    spec = SPEC.replace('on: {"[CODE]": code}', 'on: {"[CODE]": code, "\\n\\n": end}')
    assert diagnostics(tmp_path, spec) == []


def test_duplicate_trigger_is_a_yaml_error(tmp_path: Path) -> None:
    spec = SPEC.replace('on: {"[CODE]": code}', 'on: {"[CODE]": code, "[CODE]": end}')
    found = diagnostics(tmp_path, spec)
    assert len(found) == 1 and "duplicate key '[CODE]'" in found[0].message


def test_action_missing_from_policy(tmp_path: Path) -> None:
    spec = SPEC.replace("action: python", "action: pyhton")
    d = only(diagnostics(tmp_path, spec), "unknown-action")
    assert d.hint == "did you mean 'python'?" and d.path == "states.run.action"


def test_action_input_must_produce_text(tmp_path: Path) -> None:
    d = only(diagnostics(tmp_path, SPEC.replace("input: code", "input: end")), "bad-input")
    assert "final state" in d.message


def test_unknown_template_field(tmp_path: Path) -> None:
    spec = SPEC.replace("{stdout}", "{stdotu}")
    d = only(diagnostics(tmp_path, spec), "bad-template")
    assert "{stdotu}" in d.message and "{stdout}" in d.message


def test_missing_plugin_handler(tmp_path: Path) -> None:
    policy = POLICY.replace("handler: python", "handler: no_such_module_xyz:run")
    d = only(diagnostics(tmp_path, policy=policy), "missing-handler")
    assert d.path == "actions.python.handler"


def test_sqlite_without_database_and_http_without_network(tmp_path: Path) -> None:
    policy = POLICY + "  db:\n    handler: sqlite\n  web:\n    handler: http\n"
    codes = {d.code for d in diagnostics(tmp_path, policy=policy)}
    assert {"no-database", "http-no-network", "http-no-urls"} <= codes


def test_bad_regex_is_reported(tmp_path: Path) -> None:
    spec = SPEC.replace('regex: "[a-z0-9+*() ]+\\\\n"', 'regex: "[a-z"')
    found = [d for d in diagnostics(tmp_path, spec) if d.severity == "error"]
    assert found and found[0].path.startswith("states.code")


def test_close_delimiter_inside_the_language_is_an_error(tmp_path: Path) -> None:
    spec = SPEC.replace('regex: "[a-z0-9+*() ]+\\\\n"', 'regex: "[^\\\\n]*\\\\n"')
    found = [d for d in diagnostics(tmp_path, spec) if d.path == "states.code.close"]
    assert len(found) == 1 and found[0].severity == "error"
    assert found[0].location.line == line_of(spec, "close:")


def test_inline_grammar_tests_run_through_the_matcher(tmp_path: Path) -> None:
    tests = 'tests:\n  code:\n    accept: ["1+2\\n", "NOPE\\n"]\n    reject: ["x y\\n", "!\\n"]\n'
    spec = SPEC + tests
    failing = [d for d in diagnostics(tmp_path, spec) if d.code == "grammar-test"]
    assert [d.path for d in failing] == ["tests.code.accept[1]", "tests.code.reject[0]"]


def test_tests_for_an_unknown_state(tmp_path: Path) -> None:
    spec = SPEC + 'tests:\n  cod: {accept: ["1\\n"]}\n'
    d = only(diagnostics(tmp_path, spec), "grammar-test")
    assert d.hint == "did you mean 'code'?"


def test_grammar_file_outside_the_spec_folder(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "evil.lark").write_text('start: "x"\n')
    spec = SPEC.replace('regex: "[a-z0-9+*() ]+\\\\n"', "grammar: ../evil.lark")
    found = [d for d in diagnostics(inner, spec) if d.severity == "error"]
    assert len(found) == 1 and found[0].location.line == line_of(spec, "grammar: ../evil")


def test_two_constraints_on_one_state(tmp_path: Path) -> None:
    spec = SPEC.replace("    close:", '    lark: "start: /x/"\n    close:')
    assert only(diagnostics(tmp_path, spec), "constraint").severity == "error"


def test_missing_policy_file(tmp_path: Path) -> None:
    spec = SPEC.replace("policy: policy.yaml", "policy: nowhere.yaml")
    d = only(diagnostics(tmp_path, spec), "policy")
    assert d.path == "policy" and "not found" in d.message


def test_folders_are_searched_for_specs_and_policies(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "other.yaml").write_text("just: data\n")
    report, checked = check_paths([str(tmp_path)])
    assert sorted(Path(c.path).name for c in checked) == ["policy.yaml", "spec.yaml"]
    assert report.diagnostics == []


def test_grammar_state_needs_a_grammar(tmp_path: Path) -> None:
    spec = SPEC.replace('    regex: "[a-z0-9+*() ]+\\\\n"\n', "")
    d = only(diagnostics(tmp_path, spec), "constraint")
    assert d.message == "grammar state without a grammar" and d.path == "states.code"


def test_tests_of_a_broken_grammar_do_not_stop_the_check(tmp_path: Path) -> None:
    spec = SPEC.replace('regex: "[a-z0-9+*() ]+\\\\n"', 'lark: "start: foo{x}"')
    spec += 'tests:\n  code: {accept: ["1\\n"]}\nbroken: yes\n'
    found = diagnostics(tmp_path, spec)
    assert any(d.code == "schema" and "broken" in d.message for d in found)
    spec = spec.replace("broken: yes\n", "")
    found = diagnostics(tmp_path, spec)
    assert [d.path for d in found if d.severity == "error"] == ["states.code"]


def test_a_grammar_state_feeding_an_action_with_another_input(tmp_path: Path) -> None:
    retry = (
        '  retry:\n    type: grammar\n    regex: "[0-9]+\\\\n"\n'
        '    close: "[/CODE]"\n    next: run\n'
    )
    spec = SPEC.replace("next: talk", "next: talk\n    on_error: retry") + retry
    d = only(diagnostics(tmp_path, spec), "input-mismatch")
    assert d.severity == "warning" and d.path == "states.retry.next"


def test_a_policy_problem_is_reported_once_for_the_policy_and_its_specs(tmp_path: Path) -> None:
    policy = POLICY.replace(
        "timeout_s: 5",
        "timeout_s: 5\n    persistent: true\n  sh:\n    handler: shell\n    persistent: true",
    )
    write(tmp_path, policy=policy)
    write(tmp_path, policy=policy, name="other.yaml")
    report, checked = check_paths([str(tmp_path)])
    assert len(checked) == 3
    ignored = [d for d in report.diagnostics if d.code == "ignored"]
    assert len(ignored) == 1 and ignored[0].location.file.endswith("policy.yaml")


def test_session_max_context_compiles_and_must_leave_room_for_a_reply(tmp_path: Path) -> None:
    from llmos_grammar import load

    spec = SPEC.replace("start: talk", "start: talk\nsession: {max_context: 2048}")
    assert load(write(tmp_path, spec)).session.max_context == 2048
    assert diagnostics(tmp_path, spec) == []
    small = SPEC.replace("start: talk", "start: talk\nsession: {max_context: 512}")
    d = only(diagnostics(tmp_path, small), "session-context")  # limits.max_tokens is 1024
    assert d.path == "session.max_context" and d.location.line == line_of(small, "session:")
    typo = SPEC.replace("start: talk", "start: talk\nsession: {max_contxt: 512}")
    assert diagnostics(tmp_path, typo)
