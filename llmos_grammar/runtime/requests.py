"""What a row's run asks of its driver (a forward step, a segment, an action) and the replies.

A run is a generator of events and requests. The driver answers a `Step`
with a `StepReply`, a `Generate` with the engine's `SegmentOutput` and an
`ActionCall` with the `ActionResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmos_grammar.constraints import Matcher, MatcherError
from llmos_grammar.engines import SegmentOutput, SegmentParams
from llmos_grammar.results import ActionResult

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class Step:
    """Feed the row's pending ids; reply with its next-token logits and the matcher's mask."""

    row: int
    matcher: Matcher | None


@dataclass(frozen=True)
class StepReply:
    logits: Tensor  # float32 (vocab,) for this row; the run clones it before editing
    allowed: Tensor | MatcherError | None = None  # bool (vocab,); the error; None: no matcher


@dataclass(frozen=True)
class Generate:
    """Continue the row's ids by one segment (an engine that gives segments)."""

    row: int
    params: SegmentParams


@dataclass(frozen=True)
class ActionCall:
    """Run action `action` on `text`; reply with its ActionResult."""

    action: str
    text: str


Request = Step | Generate | ActionCall
Reply = StepReply | SegmentOutput | ActionResult | None  # None: a run's first `send`

__all__ = ["ActionCall", "Generate", "MatcherError", "Reply", "Request", "Step", "StepReply"]
