"""Loading specs and policies into the IR, and the errors that loading raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos_grammar.errors import PolicyError, SpecError
from llmos_grammar.ir import ActionState, FinalState, GrammarState, TextState
from llmos_grammar.spec.loader import load, load_policy
from tests.specs import SPEC, write


def test_load_builds_every_state_type(tmp_path: Path) -> None:
    machine = load(write(tmp_path))
    assert machine.name == "demo"
    assert machine.start == "talk"
    talk, code, run, end = (machine.states[n] for n in ("talk", "code", "run", "end"))
    assert isinstance(talk, TextState) and talk.triggers[0].trigger == "[CODE]"
    assert talk.on_eos == "end"
    assert isinstance(code, GrammarState) and code.close == "[/CODE]" and code.next == "run"
    assert code.constraint.kind == "regex"
    assert isinstance(run, ActionState) and run.input == "code"
    assert isinstance(end, FinalState)
    assert machine.policy.actions["python"].timeout_s == 5
    assert len(machine.cache_key) == 16


def test_cache_key_changes_with_the_spec(tmp_path: Path) -> None:
    first = load(write(tmp_path)).cache_key
    second = load(write(tmp_path, SPEC.replace("name: demo", "name: other"))).cache_key
    assert first != second


def test_inline_grammar_location_points_into_the_yaml(tmp_path: Path) -> None:
    machine = load(write(tmp_path))
    source = machine.states["code"].constraint  # type: ignore[union-attr]
    line = SPEC.splitlines().index('    regex: "[a-z0-9+*() ]+\\\\n"') + 1
    assert source.location.line == line
    assert source.location.column == 13  # first character inside the quotes


def test_policy_paths_resolve_against_the_policy_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.db").write_bytes(b"")
    policy_path = tmp_path / "p.yaml"
    policy_path.write_text(
        "llmos-policy: 1\nactions:\n  db: {handler: sqlite, database: data/x.db, read: [data]}\n"
    )
    policy = load_policy(policy_path)
    action = policy.actions["db"]
    assert action.database == str((tmp_path / "data" / "x.db").resolve())
    assert action.read == (str((tmp_path / "data").resolve()),)
    assert action.network is False and action.read_only is True


def test_load_raises_with_all_diagnostics(tmp_path: Path) -> None:
    spec = SPEC.replace("next: talk", "next: tlak").replace("eos: end", "eos: ned")
    with pytest.raises(SpecError) as info:
        load(write(tmp_path, spec))
    codes = [d.code for d in info.value.diagnostics if d.severity == "error"]
    assert codes.count("unknown-state") == 2
    assert info.value.location is not None and info.value.location.line > 0


def test_load_policy_rejects_a_spec_shaped_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("llmos-policy: 1\nactions:\n  x: {handler: python, timeout_s: -1}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.location is not None and info.value.location.line == 3


def test_load_refuses_a_policy_as_spec(tmp_path: Path) -> None:
    path = write(tmp_path)
    with pytest.raises(SpecError, match="policy file"):
        load(path.with_name("policy.yaml"))


def test_a_state_may_override_sampling(tmp_path: Path) -> None:
    spec = SPEC.replace("    close:", "    sampling: {temperature: 0.7, top_k: 40}\n    close:")
    code = load(write(tmp_path, spec)).states["code"]
    assert isinstance(code, GrammarState) and code.sampling is not None
    assert (code.sampling.temperature, code.sampling.top_k) == (0.7, 40)
    with pytest.raises(SpecError, match="unknown key 'seed'"):
        load(write(tmp_path, spec.replace("top_k: 40", "seed: 1")))
