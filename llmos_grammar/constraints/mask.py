"""Allowed-token masks for many matchers at once, and their application to logits.

`MaskBuffer.fill` is the one way masks are made, in decoding and in tests: one
int32 bitmask row per matcher, filled by each backend's `fill_masks`
(llguidance's rows in parallel on its executor), unpacked to a boolean view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmos_grammar.constraints.backend import Matcher, MatcherError
from llmos_grammar.constraints.registry import fill_masks

if TYPE_CHECKING:
    from torch import Tensor


class MaskBuffer:
    """A reusable int32 bitmask (rows x words) for a vocabulary of `vocab_size` ids.

    Safe to run on a worker thread while the model computes the next logits:
    llguidance and numpy release the GIL for the heavy parts. One buffer serves
    one caller at a time.
    """

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.words = (vocab_size + 31) // 32
        self._bits: Tensor | None = None

    def fill(self, matchers: Sequence[Matcher]) -> list[Tensor | MatcherError]:
        """For each matcher a bool (vocab,) tensor of its allowed ids, or the MatcherError
        it is in."""
        import numpy as np
        import torch

        bits = self._buffer(len(matchers))
        errors = fill_masks([(m, i) for i, m in enumerate(matchers)], bits)
        packed = bits.numpy().view(np.uint8)
        allowed = np.unpackbits(packed, axis=1, bitorder="little")[:, : self.vocab_size]
        table = torch.from_numpy(allowed.astype(bool))
        return [errors.get(i, table[i]) for i in range(len(matchers))]

    def _buffer(self, n: int) -> Tensor:
        import torch

        if self._bits is None or self._bits.shape[0] < n:
            self._bits = torch.zeros((max(n, 8), self.words), dtype=torch.int32)
        return self._bits[:n]


def apply_mask(logits: Tensor, allowed: Tensor) -> Tensor:
    """`logits` (edited in place) with every id outside `allowed` at -inf."""
    n = min(logits.shape[-1], allowed.shape[0])
    logits[:n].masked_fill_(~allowed[:n].to(logits.device), float("-inf"))
    logits[n:] = float("-inf")
    return logits
