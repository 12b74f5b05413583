"""What a row's run asks of its driver (a forward step, an action) and what it gets back.

A run is a generator of events and requests. The driver answers a `Step`
with a `StepReply`, a `Generate` (segment engines) with the `SegmentOutput`
and an `ActionCall` with the `ActionResult`; answering None makes the run do
the work itself, alone (a run driven by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from llmos_grammar.constraints.backend import MatcherError
from llmos_grammar.engines import SegmentOutput, SegmentParams
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
class Generate:
    """Continue the row's ids by one segment (a segment engine); reply with its output."""

    row: int
    params: SegmentParams


@dataclass(frozen=True)
class ActionCall:
    """Run action `action` on `text`; reply with its ActionResult."""

    action: str
    text: str


Request = Union[Step, Generate, ActionCall]  # noqa: UP007 (a runtime alias)
Reply = Union[StepReply, SegmentOutput, ActionResult, None]  # noqa: UP007

__all__ = ["ActionCall", "Generate", "MatcherError", "Reply", "Request", "Step", "StepReply"]
