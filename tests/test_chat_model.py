"""The chat example on the real default model: its own Python fence runs, and it answers with
the output."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from llmos_grammar.runtime import DoneEvent, TransitionEvent

SPEC = Path(__file__).resolve().parents[1] / "examples" / "chat" / "spec.yaml"

pytestmark = pytest.mark.model


def test_the_models_own_fence_runs_code_and_the_answer_uses_the_output() -> None:
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    machine = load(SPEC)
    budgets = replace(machine.budgets, wall_s=3600.0)  # behaviour, not speed, on a busy CPU
    with Runtime(machine, budgets=budgets) as runtime:
        events = list(runtime.stream("What is 123456 times 789?"))
    result = events[-1].result if isinstance(events[-1], DoneEvent) else None
    assert result is not None and result.ok, (result.stop_reason if result else None, result)
    fired = [e for e in events if isinstance(e, TransitionEvent) and e.source == "talk"]
    assert fired[0].target == "code" and fired[0].trigger in ("```python", "```py")
    # nothing forced the fence: the model wrote it in free text
    opened = next(s for s in result.transcript if s.state == "talk" and s.source == "model")
    assert opened.text.rstrip().endswith(fired[0].trigger)
    action = result.actions[0]
    assert action.result.ok and "97406784" in action.result.stdout
    assert action.output.startswith("\n```output\n")
    head, tail = result.text.split(action.output, 1)
    assert "97406784" in tail  # the answer after the output uses it
