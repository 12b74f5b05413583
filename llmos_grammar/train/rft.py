"""Rejection-sampling fine-tuning (expert iteration, as in STaR and ReST-EM).

Each round samples `samples` runs of every training task at the sampling
temperature with the current policy, keeps the runs the task's scorer marks
solved (each task's repeats of the same chosen text once), and fine-tunes the
adapter on them with the loss only on the tokens the model chose
(`Result.chosen`: forced text and injected action output are never learned).
The next round samples from the fine-tuned policy.
"""

from __future__ import annotations

from collections.abc import Callable

from llmos_grammar.train.examples import Example, distinct, eos_id_of, example
from llmos_grammar.train.loop import Context, draw, fit
from llmos_grammar.train.records import Draw, Record


def kept_examples(ctx: Context, drawn: Draw) -> list[Example]:
    """The distinct solved runs of a round, as examples with weight 1."""
    lm = ctx.policy.lm
    solved = [(r.task_index, r.result) for r in drawn.runs if r.solved and r.result is not None]
    eos = eos_id_of(lm.tokenizer)
    return [example(result, eos, lm.eos_ids, task=task)
            for task, result in distinct(solved, lm.tokenizer)]  # fmt: skip


def rft_round(ctx: Context, index: int) -> Record:
    """Round `index` (from 1): sample, keep, fine-tune."""
    s = ctx.settings
    everything = range(len(ctx.tasks))
    drawn = draw(ctx, everything, s.samples, index, f"round {index}/{s.rounds}")
    examples = kept_examples(ctx, drawn)
    stats, steps = fit(ctx, examples, index)
    return Record("rft", index, drawn, len(examples), stats, steps)


def run_rft(ctx: Context, on_record: Callable[[Record], object]) -> list[Record]:
    """Every round in turn; `on_record` sees each record as it is made."""
    records = []
    for index in range(1, ctx.settings.rounds + 1):
        record = rft_round(ctx, index)
        records.append(record)
        on_record(record)
    return records
