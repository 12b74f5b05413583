"""fp32 linear layers through oneDNN while decoding on a CPU.

PyTorch runs an fp32 `nn.Linear` on the CPU through MKL's sgemm. For the
shapes a small model decodes with, oneDNN's fp32 kernel (the one PyTorch's
own compiler uses, `mkldnn._linear_pointwise`) is 2-3x faster on some CPUs
(AMD EPYC, measured: a 49,152 x 576 output layer 6.9 -> 2.6 ms for one token;
576 -> 1,536 for 28 tokens 339 -> 148 us) and no slower on others. Both are
fp32; the results differ by rounding (~1e-4 on logits of size ~20).

Only under `torch.inference_mode()`, when the weight needs no gradient, and
for fp32 CPU tensors: training and anything else go through `nn.Linear`
unchanged. The weight is used as it is: no packed copy is kept.
"""

from __future__ import annotations

import types
from typing import Any


def available() -> bool:
    """Whether this PyTorch build has oneDNN and its fused linear operator."""
    import torch

    return bool(torch.backends.mkldnn.is_available()) and hasattr(
        torch.ops.mkldnn, "_linear_pointwise"
    )


def _forward(self: Any, x: Any) -> Any:
    import torch

    if (
        torch.is_inference_mode_enabled()
        and x.dtype == torch.float32
        and self.weight.dtype == torch.float32
        and x.device.type == "cpu"
        and x.dim() >= 2
    ):
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
    return type(self).forward(self, x)


def use_onednn_linears(model: Any) -> int:
    """Route `model`'s fp32 `nn.Linear` layers through oneDNN when decoding (see the module
    docstring); returns how many. A no-op without oneDNN."""
    import torch

    if not available():
        return 0
    count = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear and module.weight.dtype == torch.float32:
            if getattr(module.forward, "__func__", None) is not _forward:
                module.forward = types.MethodType(_forward, module)  # type: ignore[method-assign]
            count += 1
    return count


__all__ = ["available", "use_onednn_linears"]
