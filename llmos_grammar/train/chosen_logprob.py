"""Log-probabilities of chosen tokens through a frozen output layer, in chunks, memory-flat.

The output layer maps each hidden state to the whole vocabulary (49,152 logits
for the default model). Autograd would keep those logits for the backward pass
of every position at once; this function keeps only the hidden states and the
log-normalizers, and recomputes each chunk's logits in the backward pass, so
the memory is one chunk's logits whatever the number of positions.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

CHUNK_ROWS = 256  # positions per chunk: 256 x 49,152 fp32 logits = 50 MB


def chosen_logprobs(
    hidden: Tensor, weight: Tensor, targets: Tensor, rows: int = CHUNK_ROWS
) -> Tensor:
    """log p(targets[i] | hidden[i]) for the output layer `weight` (vocab x hidden, frozen)."""
    if weight.requires_grad:
        raise ValueError("the output layer must be frozen (LoRA does not train it)")
    return _function().apply(hidden, weight, targets, rows)


def _logits(hidden: Tensor, weight: Tensor) -> Tensor:
    return (hidden @ weight.t()).float()


@functools.cache
def _function() -> Any:
    """The autograd Function (built on first use, so that torch is imported only to train)."""
    import torch

    class ChosenLogProb(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Tensor, weight: Tensor, targets: Tensor, rows: int) -> Tensor:
            out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
            lse = torch.empty_like(out)
            for start in range(0, hidden.shape[0], rows):
                end = start + rows
                logits = _logits(hidden[start:end], weight)
                lse[start:end] = torch.logsumexp(logits, dim=-1)
                picked = logits.gather(1, targets[start:end, None])[:, 0]
                out[start:end] = picked - lse[start:end]
            ctx.save_for_backward(hidden, weight, targets, lse)
            ctx.rows = rows
            return out

        @staticmethod
        def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
            hidden, weight, targets, lse = ctx.saved_tensors
            grad_hidden = torch.empty_like(hidden)
            for start in range(0, hidden.shape[0], ctx.rows):
                end = start + ctx.rows
                g = grad[start:end].float()
                # d logp / d logits = onehot(target) - softmax(logits)
                scores = (_logits(hidden[start:end], weight) - lse[start:end, None]).exp_()
                scores.mul_(-g[:, None])
                scores.scatter_add_(1, targets[start:end, None], g[:, None])
                grad_hidden[start:end] = (scores.to(weight.dtype) @ weight).to(hidden.dtype)
            return grad_hidden, None, None, None

    return ChosenLogProb
