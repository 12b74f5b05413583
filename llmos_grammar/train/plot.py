"""PNGs of training: solved rate and loss per round or step; TRL's reward per step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos_grammar.train.records import Record
    from llmos_grammar.train.steplog import StepRecord


def plot_rewards(records: Sequence[StepRecord], out: str, title: str) -> None:
    """Reward mean +- std per step, every reward term, and the all-equal-group fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r.step for r in records]
    mean = [r.metric("reward_mean") for r in records]
    std = [r.metric("reward_std") for r in records]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 1])
    top.plot(steps, mean, marker="o", label="reward (mean)")
    top.fill_between(
        steps,
        [m - s for m, s in zip(mean, std, strict=True)],
        [m + s for m, s in zip(mean, std, strict=True)],
        alpha=0.2,
        label="± std",
    )
    terms = sorted({k for r in records for k in r.terms()})
    for key in terms:
        top.plot(steps, [r.metric(key) for r in records], linestyle="--", label=key[7:])
    top.set_ylabel("reward")
    top.set_title(title)
    top.legend(loc="best", fontsize="small")
    bottom.plot(steps, [r.metric("frac_groups_all_equal") for r in records], color="grey")
    bottom.set_ylabel("groups all equal")
    bottom.set_xlabel("step")
    bottom.set_ylim(-0.05, 1.05)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_progress(records: Sequence[Record], out: str, title: str) -> None:
    """Solved rate of the sampled runs and the loss per round (rft) or step (grpo)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    index = [r.index for r in records]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 2])
    top.plot(index, [r.solved_rate for r in records], marker="o", label="runs solved")
    if all(r.signal is not None for r in records):
        top.plot(index, [r.signal for r in records], linestyle="--", label="groups with signal")
    top.set_ylim(-0.05, 1.05)
    top.set_ylabel("fraction")
    top.set_title(title)
    top.legend(loc="best", fontsize="small")
    bottom.plot(index, [r.fit.loss for r in records], marker="o", color="grey")
    bottom.set_ylabel("loss")
    bottom.set_xlabel("round" if records and records[0].method == "rft" else "step")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
