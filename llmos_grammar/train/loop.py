"""What both methods do: sample with the merged policy, and take optimizer steps on examples."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from llmos_grammar.eval.tasks import Task
from llmos_grammar.ir import Machine
from llmos_grammar.libtypes.progress import progress_bar
from llmos_grammar.train.examples import Example
from llmos_grammar.train.lean_pass import PassStats, backward_pass
from llmos_grammar.train.policy import Policy
from llmos_grammar.train.records import Draw
from llmos_grammar.train.sampler import sample_tasks
from llmos_grammar.train.settings import TrainSettings

if TYPE_CHECKING:
    from torch.optim import Optimizer

    from llmos_grammar.eval.scorers import Scorer
    from llmos_grammar.results import Runner
    from llmos_grammar.runtime.token_decode import LogitsProcessor

SEED_STRIDE = 1_000_003  # the seeds of rounds (steps) never collide for < 1M of them


@dataclass
class Context:
    """The fixed parts of a training run, shared by its rounds or steps."""

    machine: Machine
    policy: Policy
    scorer: Scorer
    runner: Runner
    tasks: Sequence[Task]
    settings: TrainSettings
    optimizer: Optimizer
    progress: bool = True
    logits_processors: Sequence[LogitsProcessor] = ()  # passed to every sampling runtime


def make_optimizer(policy: Policy, lr: float) -> Optimizer:
    """AdamW over the LoRA parameters (no weight decay)."""
    import torch

    return torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)


def draw(ctx: Context, indices: Sequence[int], samples: int, iteration: int, label: str) -> Draw:
    """`samples` runs of each task in `indices` with the current (merged) policy, scored.

    A fresh runtime every time: the engine's cached prompt was computed with the
    weights of the last round, so it does not outlive them."""
    from llmos_grammar.runtime import Runtime

    s = ctx.settings
    seed = s.seed + SEED_STRIDE * iteration
    sampling = replace(ctx.machine.sampling, temperature=s.temperature, seed=seed)
    tasks = [ctx.tasks[i] for i in indices]
    bar = progress_bar(len(tasks) * samples, label, "run", ctx.progress)
    started = time.perf_counter()
    try:
        with ctx.policy.sampling() as lm:
            runtime = Runtime(
                ctx.machine, lm, runner=ctx.runner, logits_processors=ctx.logits_processors
            )
            try:
                runs = sample_tasks(runtime, ctx.scorer, tasks, samples, batch=s.rows,
                                    sampling=sampling, on_done=lambda: bar.update(1))  # fmt: skip
            finally:
                runtime.close()
    finally:
        bar.close()
    runs = [replace(r, task_index=indices[r.task_index]) for r in runs]
    return Draw(tuple(runs), time.perf_counter() - started)


def optimizer_step(
    ctx: Context, examples: Sequence[Example], norm: float | None = None
) -> PassStats:
    """One optimizer step on `examples` (gradients clipped to `max_grad_norm`)."""
    import torch

    stats = backward_pass(ctx.policy.model, examples, norm=norm, tokens=ctx.settings.micro_tokens)
    if stats.chosen:
        torch.nn.utils.clip_grad_norm_(ctx.policy.parameters(), ctx.settings.max_grad_norm)
        ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    return stats


def fit(ctx: Context, examples: Sequence[Example], iteration: int) -> tuple[PassStats, int]:
    """`epochs` passes over `examples` in shuffled batches of `fit_batch`, one optimizer
    step each: the steps' stats together, and how many steps."""
    s = ctx.settings
    rng = random.Random(s.seed + SEED_STRIDE * iteration)
    parts: list[PassStats] = []
    for _ in range(s.epochs):
        order = list(examples)
        rng.shuffle(order)
        for start in range(0, len(order), s.fit_batch):
            parts.append(optimizer_step(ctx, order[start : start + s.fit_batch]))
    return combined(parts), len(parts)


def combined(parts: Sequence[PassStats]) -> PassStats:
    """Several passes as one: the mean loss per step, nll per token, sums of the rest."""
    chosen = sum(p.chosen for p in parts)
    return PassStats(
        loss=sum(p.loss for p in parts) / len(parts) if parts else 0.0,
        nll=sum(p.nll * p.chosen for p in parts) / chosen if chosen else 0.0,
        chosen=chosen,
        fed=sum(p.fed for p in parts),
        prefix=max((p.prefix for p in parts), default=0),
        micro_batches=sum(p.micro_batches for p in parts),
        seconds=sum(p.seconds for p in parts),
    )
