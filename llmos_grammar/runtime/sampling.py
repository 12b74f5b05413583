"""Next-token choice: greedy, temperature, top-k, top-p, seeded."""

from __future__ import annotations

from typing import Any

from llmos_grammar.ir import Sampling


def make_generator(sampling: Sampling) -> Any:
    """A torch generator seeded from the spec (None when unseeded).

    Seeded even when the run is greedy: a state with its own `sampling` then
    samples reproducibly.
    """
    import torch

    if sampling.seed is None:
        return None
    gen = torch.Generator()
    gen.manual_seed(int(sampling.seed))
    return gen


def sample(logits: Any, sampling: Sampling, generator: Any = None) -> int:
    """Pick one token id from a 1-D logits row that may contain -inf entries."""
    import torch

    if sampling.temperature <= 0:
        return int(torch.argmax(logits).item())
    scores = logits.float().cpu() / sampling.temperature
    if sampling.top_k > 0:
        k = min(sampling.top_k, scores.shape[-1])
        kth = torch.topk(scores, k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if 0 < sampling.top_p < 1:
        ordered, order = torch.sort(scores, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(ordered, dim=-1) >= sampling.top_p
        scores[order[drop]] = float("-inf")
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())
