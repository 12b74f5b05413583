"""The list form of `on:`: several spellings of one trigger, checked and located."""

from __future__ import annotations

from pathlib import Path

from llmos_grammar.graph import mermaid
from llmos_grammar.ir import TextState
from llmos_grammar.spec.check import check_paths
from llmos_grammar.spec.loader import load
from tests.specs import SPEC, write

LISTED = SPEC.replace(
    'on: {"[CODE]": code}',
    'on:\n      - when: ["```py", "```python"]\n        to: code\n      - {when: "[END]", to: end}',
)


def diagnostics(tmp_path: Path, spec: str) -> list:
    report, _ = check_paths([str(write(tmp_path, spec))])
    return report.diagnostics


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_list_form_builds_spellings_longest_first(tmp_path: Path) -> None:
    assert diagnostics(tmp_path, LISTED) == []
    talk = load(tmp_path / "spec.yaml").states["talk"]
    assert isinstance(talk, TextState)
    assert [(t.trigger, t.target, t.path) for t in talk.triggers] == [
        ("```python", "code", ("on", 0, "when", 1)),
        ("```py", "code", ("on", 0, "when", 0)),
        ("[END]", "end", ("on", 1, "when")),
    ]


def test_the_mapping_form_keeps_its_order(tmp_path: Path) -> None:
    spec = SPEC.replace('on: {"[CODE]": code}', 'on: {"[CODE]": code, "[END]": end}')
    write(tmp_path, spec)
    talk = load(tmp_path / "spec.yaml").states["talk"]
    assert [t.trigger for t in talk.triggers] == ["[CODE]", "[END]"]  # type: ignore[union-attr]


def test_graph_labels_an_entry_with_all_its_spellings(tmp_path: Path) -> None:
    write(tmp_path, LISTED)
    assert '-- "```py | ```python" -->' in mermaid(load(tmp_path / "spec.yaml"))


def test_a_repeated_trigger_is_located(tmp_path: Path) -> None:
    spec = LISTED.replace('when: "[END]"', 'when: ["[END]", "```py"]')
    (d,) = diagnostics(tmp_path, spec)
    assert d.code == "duplicate-trigger" and "'```py' is listed twice" in d.message
    assert d.path == "states.talk.on[1].when[1]"
    assert d.location.line == line_of(spec, "[END]")
    assert d.location.column == spec.splitlines()[d.location.line - 1].index('"```py"') + 1


def test_a_prefix_in_another_entry_is_an_error(tmp_path: Path) -> None:
    spec = LISTED.replace('when: "[END]"', 'when: "```"')
    found = diagnostics(tmp_path, spec)
    assert {d.code for d in found} == {"trigger-prefix"}
    assert sorted(d.path for d in found) == [
        "states.talk.on[0].when[0]",
        "states.talk.on[0].when[1]",
    ]
    assert all("'```' is a prefix of it" in d.message for d in found)


def test_empty_trigger_and_unknown_target_in_the_list_form(tmp_path: Path) -> None:
    spec = LISTED.replace('{when: "[END]", to: end}', '{when: "", to: ending}')
    found = {d.code: d for d in diagnostics(tmp_path, spec)}
    assert found["empty-trigger"].path == "states.talk.on[1].when"
    unknown = found["unknown-state"]
    assert unknown.path == "states.talk.on[1].to" and unknown.hint == "did you mean 'end'?"


def test_schema_errors_of_an_entry_name_the_key(tmp_path: Path) -> None:
    spec = LISTED.replace('{when: "[END]", to: end}', "{when: [], too: end}")
    messages = {(d.path, d.message) for d in diagnostics(tmp_path, spec)}
    assert ("states.talk.on[1].when", "[] should be non-empty") in messages
    assert ("states.talk.on[1].too", "unknown key 'too'") in messages
    assert ("states.talk.on[1]", "'to' is a required property") in messages
