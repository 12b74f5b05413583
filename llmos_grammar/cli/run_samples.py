"""`llmos-run --samples N`: N samples of one task as rows of one batch, then their vote."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from llmos_grammar.ir import Machine
from llmos_grammar.runtime.vote import VoteTable, majority, samples_sampling, voted_text
from llmos_grammar.visible import json_text, visible

if TYPE_CHECKING:
    from llmos_grammar.runtime.events import Result


def run_samples(args: argparse.Namespace, machine: Machine, n: int) -> Result | None:
    """Run the task n times in one batch; print each final answer, the votes, the winner.

    Returns the winning row's Result (the exit status follows it); None when
    no row finished.
    """
    from llmos_grammar.actions import terminal_approver
    from llmos_grammar.engines.vllm.args import parse_engine_args
    from llmos_grammar.runtime import DoneEvent, Runtime, event_to_json

    out = sys.stdout
    sampling = samples_sampling(machine, n, args.temperature, args.seed)
    results: dict[int, Result] = {}
    from llmos_grammar.cli.adapter import load_with_adapter

    model = load_with_adapter(machine, args.adapter)
    engine_args = parse_engine_args(args.engine_arg)
    with Runtime(
        machine, model, approve=terminal_approver(yes=args.yes), engine_args=engine_args
    ) as runtime:
        for row_event in runtime.stream_batch([args.task], samples=n, batch=n, sampling=sampling):
            event = row_event.event
            if args.json:
                where = {"row": row_event.row, "sample": row_event.sample}
                out.write(json_text({**where, **event_to_json(event)}) + "\n")
            if isinstance(event, DoneEvent):
                results[row_event.sample] = event.result
                if not args.json:
                    _show_sample(out, row_event.sample, event.result, machine)
            out.flush()
    table = majority([voted_text(results[s], machine) if s in results else "" for s in range(n)])
    if args.json:
        out.write(json_text(vote_json(table)) + "\n")
    else:
        out.write(format_votes(table))
    return results.get(table.winning_row)


def _show_sample(out: TextIO, sample: int, result: Result, machine: Machine) -> None:
    answer = visible(" ".join(voted_text(result, machine).split())) or "(no answer)"
    actions = len(result.actions)
    out.write(
        f"sample {sample}: {answer}  [{result.stop_reason}, {actions} action(s), "
        f"{result.stats.generated_tokens} tokens]\n"
    )


def format_votes(table: VoteTable) -> str:
    """The vote table (answer, votes, rows) and the voted answer (control characters of
    the answers shown as escapes)."""
    if not table.entries:
        return f"\nno answer: all {table.total} sample(s) abstained\n"
    answers = [visible(e.answer) for e in table.entries]
    width = max(6, *(len(a) for a in answers)) + 2
    lines = ["", f"{'answer'.ljust(width)}votes  rows"]
    for entry, answer in zip(table.entries, answers, strict=True):
        rows = ", ".join(str(r) for r in entry.rows)
        lines.append(f"{answer.ljust(width)}{str(entry.votes).ljust(7)}{rows}")
    winner = table.entries[0]
    lines.append(
        f"voted answer: {answers[0]} ({winner.votes} of {table.total} votes, "
        f"row {table.winning_row})"
    )
    return "\n".join(lines) + "\n"


def vote_json(table: VoteTable) -> dict[str, object]:
    return {
        "kind": "vote",
        "answer": table.answer,
        "row": table.winning_row,
        "total": table.total,
        "table": [
            {"answer": e.answer, "key": e.key, "votes": e.votes, "rows": list(e.rows)}
            for e in table.entries
        ],
    }
