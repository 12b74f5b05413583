"""What `llmos-train` trains with: the method, its sizes, the optimizer, the sampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmos_grammar.train.rewards import RewardTerm

Method = Literal["rft", "grpo"]
METHODS: tuple[Method, ...] = ("rft", "grpo")
# The learning rate each method trains with unless told: RFT fits a few hundred solved runs
# a round (2e-4 moved the calculator's held-out accuracy 55.0% -> 77.7% in 3 rounds);
# GRPO takes many small policy-gradient steps.
DEFAULT_LR: dict[Method, float] = {"rft": 2e-4, "grpo": 1e-4}


@dataclass(frozen=True)
class TrainSettings:
    """rft: `rounds` rounds of `samples` runs per training task, fine-tuned on the distinct
    solved runs for `epochs` passes of `fit_batch` examples per optimizer step.
    grpo: `steps` steps of `batch` runs (`batch // group` tasks x `group`), one optimizer
    step each on the group-normalized rewards. Both: AdamW at `lr` (None: the method's
    DEFAULT_LR), `rows` runs decoded together,
    `micro_tokens` tokens per micro-batch of the training pass, LoRA rank `lora_r`
    (alpha 2r) on every linear layer of the blocks, or the adapter in `init` to go on from."""

    method: Method = "rft"
    rounds: int = 3
    samples: int = 4
    epochs: int = 2
    fit_batch: int = 16
    steps: int = 20
    group: int = 8
    batch: int = 64
    temperature: float = 0.7
    lr: float | None = None
    lora_r: int = 16
    rows: int = 16
    micro_tokens: int = 512
    max_grad_norm: float = 1.0
    seed: int = 0
    init: str | None = None
    terms: tuple[RewardTerm, ...] = (RewardTerm("correct", 1.0),)

    @property
    def learning_rate(self) -> float:
        """`lr`, or the method's default."""
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    @property
    def iterations(self) -> int:
        """Rounds (rft) or steps (grpo)."""
        return self.rounds if self.method == "rft" else self.steps
