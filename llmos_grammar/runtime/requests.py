"""What a row's run asks of its driver (a forward step, an action) and what it gets back.

A run is a generator of events and requests. The driver answers a `Step`
with a `StepReply` and an `ActionCall` with the `ActionResult`; answering
None makes the run do the work itself, alone (a run driven by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from llmos_grammar.constraints.backend import MatcherError
from llmos_grammar.results import ActionResult


@dataclass(frozen=True)
class Step:
    """Feed the row's pending ids; reply with its next-token logits and the matcher's mask."""

    row: int
    matcher: Any  # an LLGuidanceConstraint (or anything with fill_mask), or None


@dataclass(frozen=True)
class StepReply:
    logits: Any  # float32 (vocab,) for this row; the run clones it before editing
    allowed: Any = None  # bool (vocab,) tensor, a MatcherError, or None without a matcher


@dataclass(frozen=True)
class ActionCall:
    """Run action `action` on `text`; reply with its ActionResult."""

    action: str
    text: str


Request = Union[Step, ActionCall]  # noqa: UP007 (a runtime alias)
Reply = Union[StepReply, ActionResult, None]  # noqa: UP007

__all__ = ["ActionCall", "MatcherError", "Reply", "Request", "Step", "StepReply"]
