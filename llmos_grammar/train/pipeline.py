"""The baseline GRPO glue: TRL's GRPOTrainer with a peft LoRA config, our rollouts and rewards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.errors import LlmosError
from llmos_grammar.eval.tasks import Task
from llmos_grammar.ir import Machine
from llmos_grammar.models import LoadedModel
from llmos_grammar.train.rewards import TASK_KEY, RewardFunction, RewardTerm

if TYPE_CHECKING:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from llmos_grammar.train.rollout import Rollout

TRAIN_EXTRA = "pip install 'llmos-grammar[train]' (or: bash setup.sh --train)"


@dataclass(frozen=True)
class TrainConfig:
    """What `llmos-train` trains with. `batch`: completions per step and process."""

    steps: int = 20
    group: int = 4  # completions per task (GRPO's group; rewards are normalized in it)
    batch: int = 8
    lr: float = 1e-4
    lora_r: int = 16
    seed: int = 0
    temperature: float = 0.7
    terms: tuple[RewardTerm, ...] = (RewardTerm("correct", 1.0),)


def require_trl() -> None:
    """Raise a one-line LlmosError when the training extra is not installed."""
    import importlib.util

    names = ("trl", "peft", "datasets")
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise LlmosError(f"training needs {', '.join(missing)}: {TRAIN_EXTRA}")


def lora_config(r: int) -> LoraConfig:
    """LoRA on every linear layer of the transformer blocks (alpha = 2r, no dropout)."""
    from peft import LoraConfig

    return LoraConfig(
        r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )


def grpo_args(config: TrainConfig, out: Path, device: str) -> GRPOConfig:
    """GRPOConfig: no reference model (beta 0), our logging, no checkpoints, fp32 on CPU."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch,
        num_generations=config.group,
        learning_rate=config.lr,
        temperature=config.temperature,
        beta=0.0,
        seed=config.seed,
        reward_weights=[term.weight for term in config.terms],
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        gradient_checkpointing=False,
        bf16=device == "cuda",
        use_cpu=device == "cpu",
    )


def dataset(tasks: Sequence[Task]) -> Dataset:
    """The training rows: the task text as the prompt, and its index for the rewards."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [t.text for t in tasks], TASK_KEY: list(range(len(tasks)))})


def build_trainer(
    lm: LoadedModel,
    tasks: Sequence[Task],
    config: TrainConfig,
    out: Path,
    rollout: Rollout,
    reward_funcs: Sequence[RewardFunction],
    callbacks: Sequence[TrainerCallback] = (),
) -> GRPOTrainer:
    """A GRPOTrainer over `lm`'s model with LoRA, decoding through `rollout`."""
    import os

    from transformers import PreTrainedTokenizerBase, PrinterCallback
    from trl import GRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if config.batch % config.group:
        raise LlmosError(f"--batch ({config.batch}) must be a multiple of --group ({config.group})")
    if not isinstance(lm.tokenizer, PreTrainedTokenizerBase):
        raise LlmosError(
            f"training needs a Hugging Face tokenizer, not {type(lm.tokenizer).__name__}"
        )
    trainer = GRPOTrainer(
        model=lm.model,
        reward_funcs=list(reward_funcs),
        args=grpo_args(config, out, lm.device.type),
        train_dataset=dataset(tasks),
        processing_class=lm.tokenizer,
        peft_config=lora_config(config.lora_r),
        rollout_func=rollout,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # the step log and our progress bar report instead
    return trainer


def trained(machine: Machine, trainer: GRPOTrainer) -> LoadedModel:
    """The trainer's live policy (LoRA active) as a LoadedModel, e.g. for held-out eval."""
    from llmos_grammar.train.live import live_model

    return live_model(trainer.model, trainer.processing_class, name=f"{machine.name}-trained")
