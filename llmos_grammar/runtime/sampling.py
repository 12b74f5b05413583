"""Next-token choice: greedy, temperature, top-k, top-p, seeded."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from llmos_grammar.ir import Sampling

if TYPE_CHECKING:
    import torch


def row_seed(sampling: Sampling, key: tuple[int, int] = (0, 0)) -> int | None:
    """The seed of row `key` (task index, sample) of a batch; None when the spec has none.

    Every pair gets its own seed, derived from the spec's, so results do not
    depend on batch size or scheduling; (0, 0) uses the spec's seed itself, as
    a single run does.
    """
    if sampling.seed is None:
        return None
    seed = int(sampling.seed)
    if key != (0, 0):
        digest = hashlib.sha256(f"{seed}:{key[0]}:{key[1]}".encode()).digest()
        seed = int.from_bytes(digest[:8], "little") & (2**63 - 1)
    return seed


def seeded_generator(seed: int | None) -> torch.Generator | None:
    """A torch generator seeded with `seed` (None when unseeded). Seeded even when the run
    is greedy: a state with its own `sampling` then samples reproducibly."""
    import torch

    if seed is None:
        return None
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def make_generator(sampling: Sampling, key: tuple[int, int] = (0, 0)) -> torch.Generator | None:
    """The generator of row `key` (see `row_seed`)."""
    return seeded_generator(row_seed(sampling, key))


def sample(
    logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None = None
) -> int:
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
