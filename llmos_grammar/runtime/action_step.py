"""An action state: run the handler on the captured text, inject the rendered output."""

from __future__ import annotations

import time

from llmos_grammar.errors import SpecError
from llmos_grammar.ir import ActionState
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.events import (
    ActionFinished,
    ActionRecord,
    ActionStarted,
    InjectedEvent,
    Stop,
)
from llmos_grammar.runtime.pieces import format_pieces, joined
from llmos_grammar.runtime.requests import ActionCall
from llmos_grammar.runtime.row import RowState, Steps


class ActionStep(RowState):
    """A run's action states; the handler runs wherever the run's driver puts it."""

    def _action(self, state: ActionState) -> Steps:
        """Check budgets, call the policy's action, queue its output, move on.

        The run yields an `ActionCall`: only this row waits for the result, other
        rows of a batch keep decoding meanwhile.
        """
        budgets = self.rt.budgets
        if self.stats.actions >= budgets.max_actions:
            raise Stop("max_actions", f"action budget exhausted: {budgets.max_actions} actions")
        self._check_wall()
        text = self.captures.get(state.input, "")
        yield ActionStarted(state.name, state.action, text)
        started = time.perf_counter()
        result = yield ActionCall(state.action, text)
        if result is None:  # driven by hand: run it here
            result = self.rt.call_action(state.action, text)
        if not isinstance(result, ActionResult):
            raise TypeError(f"an action call was answered with {type(result).__name__}")
        self.stats.action_s += time.perf_counter() - started
        self.stats.actions += 1
        yield ActionFinished(state.name, state.action, result)
        if result.refused is not None and state.on_error is None:
            self.actions.append(ActionRecord(state.name, state.action, text, result, ""))
            raise Stop("refused", f"action {state.action!r} refused: {result.refused}")
        # A refusal with somewhere to go on error is told to the model like any failure.
        template = state.output if result.ok else (state.error_output or state.output)
        target = state.next if result.ok else (state.on_error or state.next)
        try:
            # the template's own text may make special tokens; the action's output may not
            pieces = format_pieces(template, result.template_fields())
        except (KeyError, IndexError, ValueError) as exc:
            raise SpecError(f"state {state.name!r}: bad output template: {exc}") from exc
        rendered = joined(pieces)
        self.actions.append(ActionRecord(state.name, state.action, text, result, rendered))
        n = self.queue_text(pieces)  # resumes on the existing cache at the next step
        self.add_text("injected", rendered)
        yield InjectedEvent(state.name, rendered, n)
        yield from self.enter(target, "ok" if result.ok else "error")
