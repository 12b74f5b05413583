"""The policy being trained, as a LoadedModel the runtime decodes with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from llmos_grammar.errors import LlmosError
from llmos_grammar.libtypes.hf import Tokenizer
from llmos_grammar.models import LoadedModel, wrap

if TYPE_CHECKING:
    from torch.nn import Module


def base_module(model: Module) -> Module:
    """The transformers model under any accelerate (DDP) and peft wrapping.

    peft injects its LoRA layers into this module in place, so a forward pass
    of it runs with the adapter's current weights.
    """
    inner = getattr(model, "module", model)  # DistributedDataParallel
    get_base = getattr(inner, "get_base_model", None)
    return get_base() if callable(get_base) else inner


def live_model(model: Module | None, tokenizer: object, name: str = "policy") -> LoadedModel:
    """A LoadedModel over the live (training) model: decoding sees every update.

    `model` and `tokenizer` are the trainer's `model` and `processing_class`."""
    if model is None:
        raise LlmosError("training: the trainer holds no model to decode with")
    if not isinstance(tokenizer, Tokenizer):
        raise LlmosError(
            f"training: the trainer's processing_class is a {type(tokenizer).__name__}, "
            "not a text tokenizer; give the trainer the model's tokenizer"
        )
    from transformers import PreTrainedModel

    base = base_module(model)
    if not isinstance(base, PreTrainedModel):
        raise LlmosError(
            f"training: the policy is a {type(base).__name__}, not a transformers model"
        )
    return wrap(base, tokenizer, name=name)


@contextmanager
def decoding(model: Module | None) -> Iterator[None]:
    """Eval mode and no gradients while the runtime decodes; the previous mode after."""
    import torch

    if model is None:
        raise LlmosError("training: the trainer holds no model to decode with")
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(training)
