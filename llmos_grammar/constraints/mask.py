"""Cheap application of an llguidance bitmask to a logits row (no JIT, no per-token Python loop)."""

from __future__ import annotations

from typing import Any


class MaskBuffer:
    """A preallocated int32 bitmask and the boolean view used to mask logits."""

    def __init__(self, vocab_size: int) -> None:
        import torch

        self.vocab_size = vocab_size
        words = (vocab_size + 31) // 32
        self.bits = torch.zeros((1, words), dtype=torch.int32)

    def allowed(self, constraint: Any) -> Any:
        """Fill the bitmask from `constraint` and return the allowed ids as a LongTensor.

        Safe to run on a worker thread while the model computes the next logits:
        llguidance and numpy release the GIL for the heavy parts.
        """
        import numpy as np
        import torch

        constraint.fill_mask(self.bits)
        packed = self.bits.numpy().view(np.uint8)
        bits = np.unpackbits(packed, bitorder="little")[: self.vocab_size]
        return torch.from_numpy(np.flatnonzero(bits))

    def apply(self, logits: Any, allowed: Any) -> Any:
        """A copy of the 1-D `logits` with every id outside `allowed` at -inf (~50 us)."""
        import torch

        index = allowed.to(logits.device)
        index = index[index < logits.shape[-1]]
        out = torch.full_like(logits, float("-inf"))
        out[index] = logits[index]
        return out
