"""An action state: run the handler on the captured text, inject the rendered output."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from llmos_grammar.errors import SpecError
from llmos_grammar.ir import ActionState
from llmos_grammar.runtime.events import (
    ActionFinished,
    ActionRecord,
    ActionStarted,
    Event,
    InjectedEvent,
    Stop,
)

if TYPE_CHECKING:
    from llmos_grammar.runtime.loop import Run


def run_action(run: Run, state: ActionState) -> Iterator[Event]:
    """Check budgets, call the policy's action, append its output to the KV cache, move on."""
    budgets = run.rt.budgets
    if run.stats.actions >= budgets.max_actions:
        raise Stop("max_actions", f"action budget exhausted: {budgets.max_actions} actions")
    if time.perf_counter() - run.t0 > budgets.wall_s:
        raise Stop("wall_s", f"wall-clock budget exhausted: {budgets.wall_s:g} s")
    text = run.captures.get(state.input, "")
    yield ActionStarted(state.name, state.action, text)
    started = time.perf_counter()
    result = run.rt.runner().run(state.action, text)
    run.stats.action_s += time.perf_counter() - started
    run.stats.actions += 1
    yield ActionFinished(state.name, state.action, result)
    if result.refused is not None and state.on_error is None:
        run.actions.append(ActionRecord(state.name, state.action, text, result, ""))
        raise Stop("refused", f"action {state.action!r} refused: {result.refused}")
    # A refusal with somewhere to go on error is told to the model like any failure.
    template = state.output if result.ok else (state.error_output or state.output)
    target = state.next if result.ok else (state.on_error or state.next)
    try:
        rendered = template.format(**result.template_fields())
    except (KeyError, IndexError, ValueError) as exc:
        raise SpecError(f"state {state.name!r}: bad output template: {exc}") from exc
    run.actions.append(ActionRecord(state.name, state.action, text, result, rendered))
    n = run.queue_text(rendered)  # resumes on the existing cache at the next step
    run.add_text("injected", rendered)
    yield InjectedEvent(state.name, rendered, n)
    yield from run.enter(target, "ok" if result.ok else "error")
