"""The policy being trained: the model with a peft LoRA adapter, merged into it for sampling."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.errors import LlmosError
from llmos_grammar.models import LoadedModel

if TYPE_CHECKING:
    from peft import PeftModel
    from torch.nn import Parameter
    from transformers import PreTrainedModel


class Policy:
    """`lm`'s model with LoRA layers injected in place (peft); only they train.

    `sampling()` merges the adapter into the weights for the time the runtime
    decodes (each linear layer then costs what the base model's does), and takes
    it out again after: the LoadedModel it yields is `lm` itself, so the token
    table and tokenizer are built once for the whole run.
    """

    def __init__(self, lm: LoadedModel, lora_r: int = 16, init: str | Path | None = None) -> None:
        from peft import PeftModel, get_peft_model
        from transformers import PreTrainedModel

        from llmos_grammar.train.pipeline import lora_config

        self.lm = lm
        try:
            if init is not None:
                peft: PeftModel = PeftModel.from_pretrained(lm.model, str(init), is_trainable=True)
            else:
                peft = get_peft_model(lm.model, lora_config(lora_r))
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise LlmosError(f"training: cannot put a LoRA adapter on {lm.name}: {exc}") from exc
        self.peft = peft
        base = peft.get_base_model()  # the same module as lm.model, LoRA layers inside
        if not isinstance(base, PreTrainedModel):
            raise LlmosError(f"training: {lm.name} is a {type(base).__name__}, not transformers'")
        self.model: PreTrainedModel = base
        self.model.train()

    def parameters(self) -> list[Parameter]:
        """The trainable (LoRA) parameters."""
        return [p for p in self.peft.parameters() if p.requires_grad]

    @contextmanager
    def sampling(self) -> Iterator[LoadedModel]:
        """The model with the adapter merged, in eval mode without gradients."""
        import torch

        self.peft.merge_adapter()
        self.model.eval()
        try:
            with torch.no_grad():
                yield self.lm
        finally:
            self.peft.unmerge_adapter()
            self.model.train()

    def save(self, out: Path) -> None:
        """The adapter (`adapter_config.json`, `adapter_model.safetensors`) into `out`."""
        self.peft.save_pretrained(str(out))
