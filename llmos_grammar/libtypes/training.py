"""TRL's trainer as our rollout function sees it (GRPOTrainer fits; so does a test's stand-in)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from torch.nn import Module


class StepState(Protocol):
    """transformers' TrainerState: the optimizer step reached."""

    @property
    def global_step(self) -> int: ...


class Process(Protocol):
    """accelerate's Accelerator: which process of a distributed run this is."""

    @property
    def process_index(self) -> int: ...


class PolicyTrainer(Protocol):
    """What a `rollout_func` reads of its trainer: the live policy, its tokenizer (TRL's
    `processing_class`), the step and the process."""

    @property
    def model(self) -> Module | None: ...

    @property
    def processing_class(self) -> object: ...

    @property
    def state(self) -> StepState: ...

    @property
    def accelerator(self) -> Process: ...
