"""GRPO on our own training pass: groups of runs per task, rewards normalized within the group.

Each step samples `group` runs of `batch // group` tasks (taken in a seeded
order, all tasks before any repeats), rewards each run (the scorer's solved as
`correct`, plus shaping terms), and takes one optimizer step on
  -sum_runs A * sum_chosen_tokens log p  /  chosen tokens of the step,
with A = (reward - group mean) / (group std + 1e-4). That is TRL's GRPO loss
(`loss_type="dapo"`, `scale_rewards="group"`, beta 0) with one update per
batch, where the clipped ratio is 1. Groups whose rewards are all equal carry
no gradient and are not fed at all.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence

from llmos_grammar.train.examples import Example, eos_id_of, example
from llmos_grammar.train.loop import SEED_STRIDE, Context, draw, optimizer_step
from llmos_grammar.train.records import Draw, Record
from llmos_grammar.train.rewards import TERMS, RewardLog
from llmos_grammar.train.sampler import Sampled

EPSILON = 1e-4


def reward(ctx: Context, run: Sampled) -> float:
    """The weighted sum of the reward terms for one run (0 for a run that raised)."""
    total = 0.0
    for term in ctx.settings.terms:
        if term.name == "correct":
            total += term.weight * float(run.solved)
        elif run.result is not None:
            task = ctx.tasks[run.task_index]
            total += term.weight * TERMS[term.name](ctx.scorer, task, run.result, RewardLog())
    return total


def advantages(rewards: Sequence[float], group: int) -> list[float]:
    """Each reward minus its group's mean, over the group's (sample) standard deviation."""
    out = []
    for start in range(0, len(rewards), group):
        chunk = rewards[start : start + group]
        mean = statistics.fmean(chunk)
        std = statistics.stdev(chunk) if len(chunk) > 1 else 0.0
        out += [(r - mean) / (std + EPSILON) for r in chunk]
    return out


def step_tasks(count: int, per_step: int, step: int, seed: int) -> list[int]:
    """The task indices of step `step` (from 1): consecutive slices of seeded shuffles."""
    out: list[int] = []
    position = (step - 1) * per_step
    while len(out) < per_step:
        epoch, offset = divmod(position, count)
        order = list(range(count))
        random.Random(seed + SEED_STRIDE * epoch).shuffle(order)
        take = order[offset : offset + per_step - len(out)]
        out += take
        position += len(take)
    return out


def grpo_step(ctx: Context, index: int) -> Record:
    s = ctx.settings
    indices = step_tasks(len(ctx.tasks), s.batch // s.group, index, s.seed)
    drawn = draw(ctx, indices, s.group, index, f"step {index}/{s.steps}")
    rewards = [reward(ctx, run) for run in drawn.runs]  # in (task, sample) order: groups
    weights = advantages(rewards, s.group)
    examples = _examples(ctx, drawn, weights)
    norm = sum(e.chosen for e in examples)
    learned = [e for e in examples if e.weight != 0.0]
    stats = optimizer_step(ctx, learned, norm=norm or None)
    groups = [rewards[i : i + s.group] for i in range(0, len(rewards), s.group)]
    signal = sum(1 for g in groups if max(g) != min(g)) / len(groups) if groups else 0.0
    mean = statistics.fmean(rewards) if rewards else 0.0
    return Record("grpo", index, drawn, len(learned), stats, 1, signal, {"reward_mean": mean})


def _examples(ctx: Context, drawn: Draw, weights: Sequence[float]) -> list[Example]:
    lm = ctx.policy.lm
    eos = eos_id_of(lm.tokenizer)
    return [
        example(run.result, eos, lm.eos_ids, weight, run.task_index)
        for run, weight in zip(drawn.runs, weights, strict=True)
        if run.result is not None
    ]


def run_grpo(ctx: Context, on_record: Callable[[Record], object]) -> list[Record]:
    """Every step in turn; `on_record` sees each record as it is made."""
    records = []
    for index in range(1, ctx.settings.steps + 1):
        record = grpo_step(ctx, index)
        records.append(record)
        on_record(record)
    return records
