"""Allowed-token masks for many matchers at once (llguidance's parallel executor)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmos_grammar.constraints.backend import MatcherError
from llmos_grammar.constraints.llguidance_backend import LLGuidanceConstraint


class BatchMasks:
    """A reusable int32 bitmask; `compute` fills one row per matcher and unpacks them.

    Safe to run on a worker thread while the model computes the next logits:
    llguidance and numpy release the GIL for the heavy parts.
    """

    def __init__(self, vocab_size: int) -> None:
        import llguidance

        self.vocab_size = vocab_size
        self.words = (vocab_size + 31) // 32
        self.executor = llguidance.LLExecutor()
        self._bits: Any = None

    def compute(self, matchers: Sequence[Any]) -> list[Any]:
        """For each matcher a bool (vocab,) tensor of allowed ids, or the MatcherError it hit."""
        import numpy as np
        import torch

        n = len(matchers)
        bits = self._buffer(n)
        out: list[Any] = [None] * n
        par = []
        for i, m in enumerate(matchers):
            if isinstance(m, LLGuidanceConstraint):
                par.append((m.matcher, i))
                continue
            try:  # any other constraint fills its own row
                m.fill_mask(bits[i : i + 1])
            except MatcherError as exc:
                out[i] = exc
        if par:  # llguidance.torch.fill_next_token_bitmask_par, without importing torch.compile
            self.executor.unsafe_compute_mask_ptr(par, bits.data_ptr(), self.words * 4, n)
        for raw, i in par:
            if raw.is_error():
                out[i] = MatcherError(str(raw.get_error()))
        packed = bits.numpy().view(np.uint8)
        allowed = np.unpackbits(packed, axis=1, bitorder="little")[:, : self.vocab_size]
        table = torch.from_numpy(allowed.astype(bool))
        return [table[i] if out[i] is None else out[i] for i in range(n)]

    def _buffer(self, n: int) -> Any:
        import torch

        if self._bits is None or self._bits.shape[0] < n:
            self._bits = torch.zeros((max(n, 8), self.words), dtype=torch.int32)
        return self._bits[:n]


def apply_mask(logits: Any, allowed: Any) -> Any:
    """`logits` (edited in place) with every id outside `allowed` at -inf."""
    n = min(logits.shape[-1], allowed.shape[0])
    logits[:n].masked_fill_(~allowed[:n].to(logits.device), float("-inf"))
    logits[n:] = float("-inf")
    return logits
