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

    def apply(self, logits: Any) -> None:
        """Set disallowed entries of the 1-D `logits` to -inf, in place."""
        import numpy as np
        import torch

        packed = self.bits.numpy().view(np.uint8)
        allowed = np.unpackbits(packed, bitorder="little")[: self.vocab_size]
        banned = torch.from_numpy(allowed == 0)
        width = logits.shape[-1]
        if width > self.vocab_size:
            logits[self.vocab_size :] = float("-inf")
        logits[: min(width, self.vocab_size)].masked_fill_(
            banned[:width].to(logits.device), float("-inf")
        )

    def is_empty(self) -> bool:
        """True when the last filled mask allows no token at all."""
        return not bool(self.bits.any())
