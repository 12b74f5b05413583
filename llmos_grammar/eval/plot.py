"""A PNG comparing llmos with the plain baseline: accuracy bars and the outcome breakdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmos_grammar.eval.outcomes import OUTCOMES
from llmos_grammar.eval.report import Summary

COLOURS = {
    "solved": "#2ca02c",
    "wrong answer": "#d62728",
    "exception": "#ff7f0e",
    "timeout": "#9467bd",
    "limit hit": "#8c564b",
    "no action": "#7f7f7f",
    "budget exhausted": "#bcbd22",
    "refused": "#17becf",
    "model error": "#1f77b4",
    "scoring error": "#e377c2",
}


def plot_comparison(summaries: Sequence[Summary], path: str | Path, title: str) -> None:
    """Write the PNG: per column (llmos, plain) its accuracy, and its outcomes stacked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.label for s in summaries]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    values = [100 * s.accuracy for s in summaries]
    bars = left.bar(names, values, color=["#1f77b4", "#aaaaaa"][: len(summaries)])
    for bar, value in zip(bars, values, strict=True):
        left.text(bar.get_x() + bar.get_width() / 2, value + 1, f"{value:.0f}%", ha="center")
    left.set_ylim(0, 105)
    left.set_ylabel("accuracy (%)")
    left.set_title("accuracy")
    bottoms = [0.0] * len(summaries)
    for outcome in OUTCOMES:
        counts = [float(s.outcomes.get(outcome, 0)) for s in summaries]
        if any(counts):
            right.bar(names, counts, bottom=bottoms, label=outcome, color=COLOURS[outcome])
            bottoms = [b + c for b, c in zip(bottoms, counts, strict=True)]
    right.set_ylabel("tasks")
    right.set_title("outcomes")
    right.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
