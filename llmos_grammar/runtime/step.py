"""One batched step: a forward pass for every row that asked, masks computed alongside."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from llmos_grammar.constraints import MaskBuffer
from llmos_grammar.engines import LogitsEngine
from llmos_grammar.runtime.requests import Step, StepReply


def step_rows(
    engine: LogitsEngine, masks: MaskBuffer, worker: ThreadPoolExecutor, steps: Sequence[Step]
) -> list[StepReply]:
    """Replies in the order of `steps`.

    The masks depend only on tokens already consumed, so they are computed on
    `worker` while the model runs the forward pass.
    """
    constrained = [s.matcher for s in steps if s.matcher is not None]
    pending = worker.submit(masks.fill, constrained) if constrained else None
    logits = engine.forward([s.row for s in steps])
    allowed = iter(pending.result()) if pending is not None else iter(())
    return [
        StepReply(logits[s.row], next(allowed) if s.matcher is not None else None) for s in steps
    ]
