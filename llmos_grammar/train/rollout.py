"""TRL's `rollout_func`: the runtime's batched, executed rollouts as token ids and masks.

TRL (`GRPOTrainer`, `rollout_func=`) calls it with the prompts of one
generation batch, each already repeated `num_generations` times, and takes one
row per prompt: `prompt_ids`, `completion_ids`, `logprobs` (None: TRL then
recomputes them), `env_mask` (1 where the model chose the token, 0 for forced
text and injected action output; TRL multiplies it into the loss mask) and any
other key, which reaches the reward functions one value per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from llmos_grammar.errors import LlmosError
from llmos_grammar.ir import Machine

if TYPE_CHECKING:
    from llmos_grammar.libtypes.training import PolicyTrainer
    from llmos_grammar.results import Runner
    from llmos_grammar.runtime import Result, Runtime
    from llmos_grammar.runtime.host import LogitsProcessor

RESULT_KEY = "llmos_result"  # the extra key that carries each row's Result to the rewards
SEED_STRIDE = 1_000_003  # seeds of (step, process) pairs never collide for < 1M processes
Prompt = str | list[dict[str, str]]  # TRL's prompt: text, or a conversation's messages


def rollout_rows(
    results: Sequence[Result], eos_id: int, eos_ids: frozenset[int]
) -> dict[str, object]:
    """TRL's rollout dict for finished runs, one row per result, in order.

    A completion that does not end with an end-of-sequence id (a budget ran
    out, or the machine reached its final state from an action) gets `eos_id`
    appended with mask 0, so TRL does not count it as truncated and the model
    is not taught to stop there.
    """
    prompt_ids: list[list[int]] = []
    completion_ids: list[list[int]] = []
    env_mask: list[list[int]] = []
    for result in results:
        ids, mask = list(result.completion_ids), list(result.chosen)
        if len(ids) != len(mask):
            raise ValueError(f"a result has {len(ids)} completion ids but {len(mask)} mask entries")
        if not ids or ids[-1] not in eos_ids:
            ids.append(eos_id)
            mask.append(0)
        prompt_ids.append(list(result.prompt_ids))
        completion_ids.append(ids)
        env_mask.append(mask)
    return {
        "prompt_ids": prompt_ids,
        "completion_ids": completion_ids,
        "logprobs": None,
        "env_mask": env_mask,
        RESULT_KEY: list(results),
    }


class Rollout:
    """A `rollout_func` that runs each prompt (a task) through `machine` on the live policy.

    The runtime is built on the first call around the trainer's own model (LoRA
    layers included), so every step decodes with the current weights; it
    decodes in eval mode without gradients and restores the training mode.
    Row (step, process, i) samples with its own seed, so the `num_generations`
    copies of a prompt differ and runs are reproducible.
    """

    def __init__(
        self,
        machine: Machine,
        *,
        batch: int = 8,
        temperature: float = 1.0,
        seed: int = 0,
        runner: Runner | None = None,
        logits_processors: Sequence[LogitsProcessor] = (),
    ) -> None:
        self.machine = machine
        self.logits_processors = tuple(logits_processors)
        self.batch = batch
        self.temperature = temperature
        self.seed = seed
        self.runner = runner
        self.runtime: Runtime | None = None
        self.seconds = 0.0  # time spent decoding, summed over calls

    def __call__(self, prompts: Sequence[Prompt], trainer: PolicyTrainer) -> dict[str, object]:
        import time

        from llmos_grammar.train.live import decoding

        runtime = self._runtime(trainer)
        started = time.perf_counter()
        with decoding(trainer.model):
            results = self.run(runtime, [_text(p) for p in prompts], self._seed(trainer))
        self.seconds += time.perf_counter() - started
        return rollout_rows(results, _eos_id(runtime), runtime.lm.eos_ids)

    def run(self, runtime: Runtime, tasks: list[str], seed: int) -> list[Result]:
        """One result per task, in order (each task is its own row)."""
        sampling = replace(runtime.sampling, temperature=self.temperature, seed=seed)
        rows = runtime.run_batch(tasks, samples=1, batch=self.batch, sampling=sampling)
        return [row[0] for row in rows]

    def _seed(self, trainer: PolicyTrainer) -> int:
        step = trainer.state.global_step
        process = trainer.accelerator.process_index
        return self.seed + SEED_STRIDE * step + 7919 * process

    def _runtime(self, trainer: PolicyTrainer) -> Runtime:
        if self.runtime is None:
            from llmos_grammar.runtime import Runtime
            from llmos_grammar.train.live import live_model

            lm = live_model(trainer.model, trainer.processing_class)
            self.runtime = Runtime(
                self.machine, lm, runner=self.runner, logits_processors=self.logits_processors
            )
        return self.runtime

    def close(self) -> None:
        """End the runtime's action sessions and threads."""
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None


def _text(prompt: Prompt) -> str:
    """A task's text: a plain prompt, or the last user message of a conversational one."""
    if isinstance(prompt, str):
        return prompt
    return prompt[-1]["content"]


def _eos_id(runtime: Runtime) -> int:
    """The tokenizer's end-of-sequence id, appended to completions cut short."""
    eos = runtime.lm.tokenizer.eos_token_id
    if eos is None:
        raise LlmosError(
            f"training: the tokenizer of {runtime.lm.name!r} has no end-of-sequence id"
        )
    return int(eos)
