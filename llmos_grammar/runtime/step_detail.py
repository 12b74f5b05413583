"""A sampling step as a run records it when asked: probabilities, the mask's size, the time."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from llmos_grammar.constraints import TokenTable
from llmos_grammar.runtime.events import Alternative, StepDetail

if TYPE_CHECKING:
    from torch import Tensor

TOP = 5  # alternatives recorded per step
DIGITS = 6  # probabilities and seconds are kept to 6 decimals, as a trace writes them


def step_detail(
    logits: Tensor,
    token: int,
    temperature: float,
    masked: bool,
    started: float,
    table: TokenTable,
) -> StepDetail:
    """The step that sampled `token` from `logits` (masked, the processors applied): its
    probability at `temperature` (greedy: at 1), the likeliest ids, the mask's size
    (`masked`: the state has a mask) and the seconds since `started` (perf_counter)."""
    import torch

    scores = logits.float()
    if temperature > 0:
        scores = scores / temperature
    probs = torch.softmax(scores, dim=-1)
    values, ids = torch.topk(probs, min(TOP, probs.shape[-1]))
    top = tuple(
        Alternative(i, table.decode([i]).decode("utf-8", "replace"), round(p, DIGITS))
        for p, i in zip(values.tolist(), ids.tolist(), strict=True)
        if p > 0
    )
    allowed = int(torch.isfinite(logits).sum().item()) if masked else None
    p = round(float(probs[token].item()), DIGITS)
    return StepDetail(p, allowed, top, round(time.perf_counter() - started, DIGITS))
