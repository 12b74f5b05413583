"""The extract example on the real model, once per backend: schema-valid JSON each time."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from llmos_grammar.ir import BackendChoice, GrammarState

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.model


@pytest.mark.parametrize("backend", ["outlines", "llguidance"])
def test_extract_gives_valid_json_on_each_backend(backend: BackendChoice) -> None:
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    machine = load(ROOT / "examples" / "extract" / "spec.yaml")
    state = machine.states["json"]
    assert isinstance(state, GrammarState)
    machine = replace(machine, states={**machine.states, "json": replace(state, backend=backend)})
    budgets = replace(machine.budgets, wall_s=600.0)  # the JSON is under test, not the speed
    with Runtime(machine, budgets=budgets) as rt:
        assert rt.enforcement["json"].backend == backend
        result = rt.run("Grace Hopper retired from the Navy at the age of 79.")
    assert result.stop_reason == "final", result.message
    body = result.text.removeprefix("[JSON]").removesuffix("[/JSON]")
    value = json.loads(body)
    jsonschema.validate(value, json.loads(state.constraint.text))
    assert value["age"] == 79
