"""An action state: run the handler on the captured text, inject the rendered output."""

from __future__ import annotations

import time

from llmos_grammar.errors import SpecError
from llmos_grammar.ir import ActionState, Budgets
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.events import (
    ActionFinished,
    ActionRecord,
    ActionStarted,
    InjectedEvent,
    Stop,
)
from llmos_grammar.runtime.moves import Moves
from llmos_grammar.runtime.pieces import Pieces, format_pieces, joined
from llmos_grammar.runtime.requests import ActionCall
from llmos_grammar.runtime.row import Row, Steps


class ActionStep:
    """A row's action states; the handler runs wherever the run's driver puts it."""

    def __init__(self, moves: Moves, budgets: Budgets) -> None:
        self.moves = moves
        self.budgets = budgets

    def run(self, row: Row, state: ActionState) -> Steps:
        """Check budgets, ask for the policy's action, queue its output, move on.

        The run yields an `ActionCall`: only this row waits for the result, other
        rows of a batch keep decoding meanwhile.
        """
        if row.stats.actions >= self.budgets.max_actions:
            limit = self.budgets.max_actions
            raise Stop("max_actions", f"action budget exhausted: {limit} actions")
        self.moves.check_wall(row)
        text = row.captures.get(state.input, "")
        yield ActionStarted(state.name, state.action, text)
        started = time.perf_counter()
        result = yield ActionCall(state.action, text)
        if not isinstance(result, ActionResult):
            raise TypeError(f"an action call was answered with {type(result).__name__}")
        row.stats.action_s += time.perf_counter() - started
        row.stats.actions += 1
        yield ActionFinished(state.name, state.action, result)
        if result.refused is not None and state.on_error is None:
            row.actions.append(ActionRecord(state.name, state.action, text, result, ""))
            raise Stop("refused", f"action {state.action!r} refused: {result.refused}")
        # A refusal with somewhere to go on error is told to the model like any failure.
        pieces = _rendered(state, result)
        rendered = joined(pieces)
        row.actions.append(ActionRecord(state.name, state.action, text, result, rendered))
        n = yield from self.moves.queue(row, pieces)  # resumes on the existing cache next step
        row.add_text("injected", rendered)
        yield InjectedEvent(state.name, rendered, n)
        target = state.next if result.ok else (state.on_error or state.next)
        yield from self.moves.enter(row, target, "ok" if result.ok else "error")


def _rendered(state: ActionState, result: ActionResult) -> Pieces:
    """The state's output (or error output) template over the result's fields: the
    template's own text may make special tokens; the action's output may not."""
    template = state.output if result.ok else (state.error_output or state.output)
    try:
        return format_pieces(template, result.template_fields())
    except (KeyError, IndexError, ValueError) as exc:
        raise SpecError(f"state {state.name!r}: bad output template: {exc}") from exc
