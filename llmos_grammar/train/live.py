"""The policy being trained, as a LoadedModel the runtime decodes with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmos_grammar.models import LoadedModel, wrap


def base_module(model: Any) -> Any:
    """The transformers model under any accelerate (DDP) and peft wrapping.

    peft injects its LoRA layers into this module in place, so a forward pass
    of it runs with the adapter's current weights.
    """
    inner = getattr(model, "module", model)  # DistributedDataParallel
    get_base = getattr(inner, "get_base_model", None)
    return get_base() if callable(get_base) else inner


def live_model(model: Any, tokenizer: Any, name: str = "policy") -> LoadedModel:
    """A LoadedModel over the live (training) model: decoding sees every update."""
    return wrap(base_module(model), tokenizer, name=name)


@contextmanager
def decoding(model: Any) -> Iterator[None]:
    """Eval mode and no gradients while the runtime decodes; the previous mode after."""
    import torch

    training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(training)
