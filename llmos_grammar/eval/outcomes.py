"""Why a sample ended as it did: one outcome per scored sample."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from llmos_grammar.actions import ActionResult
    from llmos_grammar.runtime.events import Result

Outcome = Literal[
    "solved",
    "wrong answer",
    "exception",
    "timeout",
    "limit hit",
    "no action",
    "budget exhausted",
    "refused",
    "model error",
    "scoring error",
]
# In the order reports list them: the order of `Outcome`.
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
# SIGKILL and SIGXCPU: how the sandbox ends a process at a limit (CPU seconds, memory,
# processes), also when its accounting names no limit.
KILLED_BY_LIMIT = frozenset({signal.SIGKILL.value, signal.SIGXCPU.value})
BUDGET_STOPS = frozenset({"max_tokens", "state_max_tokens", "max_actions", "wall_s"})


def action_outcome(result: ActionResult) -> Outcome | None:
    """What went wrong in one action (or test run); None when it exited 0."""
    if result.refused is not None:
        return "refused"
    if result.timed_out or result.limit_hit == "timeout":
        return "timeout"
    if result.limit_hit is not None or result.signal in KILLED_BY_LIMIT:
        return "limit hit"
    if not result.ok:
        return "exception"
    return None


def unsolved_outcome(result: Result, expects_action: bool) -> Outcome:
    """Why an unsolved run failed, the most specific cause first.

    A refusal; else the last action's failure (it is what the run's answer
    rested on); else a budget that ran out; else no action at all where the
    spec has action states; else the answer was wrong.
    """
    if result.stop_reason == "refused":
        return "refused"
    if result.actions:
        failed = action_outcome(result.actions[-1].result)
        if failed is not None:
            return failed
    if result.stop_reason in BUDGET_STOPS:
        return "budget exhausted"
    if expects_action and not result.actions:
        return "no action"
    return "wrong answer"
