"""`llmos-eval SPEC --tasks FILE.jsonl|humaneval`: success rate, pass@k, majority vote."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.cli.adapter import (
    add_adapter_argument,
    add_wall_argument,
    load_with_adapter,
    with_wall,
)
from llmos_grammar.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from llmos_grammar.cli.options import add_engine_arguments
from llmos_grammar.cli.process import prepare_for_model
from llmos_grammar.visible import json_text, visible

if TYPE_CHECKING:
    from llmos_grammar.eval import Evaluation, Scorer, TaskSet
    from llmos_grammar.eval.runner import BatchRuntime
    from llmos_grammar.ir import Machine, Sampling
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.viewer.record import TraceRecorder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the spec YAML file")
    parser.add_argument(
        "--tasks", required=True, metavar="FILE", help="a JSONL task file, or humaneval (164)"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N tasks")
    parser.add_argument(
        "--samples", type=int, metavar="N", help="samples per task (default: the spec's samples.n)"
    )
    parser.add_argument(
        "--batch", type=int, default=8, metavar="B", help="rows decoded together (default 8)"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help="temperature of the samples (default: samples.temperature when N > 1, else the "
        "spec's sampling)",
    )
    parser.add_argument("--seed", type=int, metavar="S", help="sampling seed")
    parser.add_argument("--json", metavar="OUT", help="write the results as a JSON document")
    parser.add_argument("--plot", metavar="OUT.png", help="write a PNG: accuracy and outcomes")
    parser.add_argument(
        "--html",
        metavar="OUT.html",
        help="write one HTML page: pass@k, outcomes, the tasks filtered by outcome, each "
        "task's trace (records step details)",
    )
    parser.add_argument(
        "--baseline", choices=["plain"], help="also run the plain model (no spec) side by side"
    )
    add_engine_arguments(parser)
    add_adapter_argument(parser)
    add_wall_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, in one line; None when nothing is."""
    for name in ("limit", "samples", "batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name} must be at least 1 (got {value})"
    if args.wall_s is not None and args.wall_s <= 0:
        return f"--wall-s must be positive (got {args.wall_s:g})"
    if args.temperature is not None and args.temperature < 0:
        return f"--temperature must not be negative (got {args.temperature:g})"
    if args.tasks != "humaneval" and not Path(args.tasks).is_file():
        return f"--tasks: no such file: {args.tasks} (a JSONL file, or humaneval)"
    if not Path(args.spec).is_file():
        return f"no such spec file: {args.spec}"
    for option in ("json", "plot", "html"):
        out = getattr(args, option)
        if out is not None and not Path(out).resolve().parent.is_dir():
            return f"--{option}: no such folder for {out}"
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        return f"--plot writes a PNG; name it *.png (got {args.plot})"
    return None


def open_runtimes(
    machines: Sequence[Machine],
    adapter: str | None = None,
    engine_args: Mapping[str, str] | None = None,
    details: bool = False,
) -> list[Runtime]:
    """One Runtime per machine, all on the first machine's model and engine, loaded once
    (with `adapter`: the model with that LoRA merged, on the transformers engine;
    `details`: the runs record step details, for --html)."""
    from llmos_grammar.engines.select import choose, load_for
    from llmos_grammar.runtime import Runtime

    first = machines[0]
    lm = load_with_adapter(first, adapter)
    if lm is None:
        engine = choose(first.engine, first.model, engine_args=engine_args)
        lm = load_for(engine, first.model, engine_args)
    return [Runtime(machine, lm, details=details) for machine in machines]


def run(args: argparse.Namespace) -> int:
    problem = usage_problem(args)
    if problem is not None:
        print(f"llmos-eval: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from llmos_grammar.engines.vllm.args import parse_engine_args
    from llmos_grammar.eval import Scorer, load_tasks, plain_machine
    from llmos_grammar.eval.scorers import python_action
    from llmos_grammar.ir import ModelRef
    from llmos_grammar.runtime.vote import samples_sampling
    from llmos_grammar.spec import load

    taskset = load_tasks(args.tasks, args.limit)
    machine = load(args.spec)
    if args.model:
        machine = replace(machine, model=ModelRef(name=args.model))
    if args.engine:
        machine = replace(machine, engine=args.engine)
    machine = with_wall(machine, args.wall_s)
    n = args.samples or machine.samples.n
    sampling = samples_sampling(machine, n, args.temperature, args.seed)
    action = python_action(machine) if any(t.scorer == "tests" for t in taskset.tasks) else None
    sides = [("llmos", machine, Scorer(machine, action=action))]
    if args.baseline:
        plain = plain_machine(machine)
        sides.append(("plain", plain, Scorer(plain, plain=True, action=action)))
    print(
        visible(
            f"{machine.name} on {taskset.name}: {len(taskset.tasks)} task(s), {n} sample(s) "
            f"each, temperature {sampling.temperature:g}, model {machine.model.name}"
        ),
        flush=True,
    )
    prepare_for_model()
    engine_args = parse_engine_args(args.engine_arg)
    html = args.html is not None
    runtimes = open_runtimes([m for _, m, _ in sides], args.adapter, engine_args, html)
    recorders = _recorders(runtimes) if html else []
    try:
        evaluations = _evaluate(args, sides, recorders or runtimes, taskset, n, sampling)
    finally:
        for runtime in runtimes:
            runtime.close()
        for _, _, scorer in sides:
            scorer.close()
    if html:
        _write_html(args.html, machine, taskset, evaluations, recorders)
    return _report(args, machine, taskset, evaluations, n)


def _recorders(runtimes: Sequence[Runtime]) -> list[TraceRecorder]:
    from llmos_grammar.viewer.record import TraceRecorder

    return [TraceRecorder(runtime) for runtime in runtimes]


def _write_html(
    path: str,
    machine: Machine,
    taskset: TaskSet,
    evaluations: Sequence[Evaluation],
    recorders: Sequence[TraceRecorder],
) -> None:
    """The --html page: every evaluation with its tasks' traces."""
    from llmos_grammar.viewer.eval_page import eval_html
    from llmos_grammar.viewer.graph_data import state_graph

    sides = [(e, r.voted_traces(e.results)) for e, r in zip(evaluations, recorders, strict=False)]
    page = eval_html(machine.path, taskset.name, sides, state_graph(machine))
    Path(path).write_text(page, encoding="utf-8")


def _evaluate(
    args: argparse.Namespace,
    sides: list[tuple[str, Machine, Scorer]],
    runtimes: Sequence[BatchRuntime],
    taskset: TaskSet,
    n: int,
    sampling: Sampling,
) -> list[Evaluation]:
    from llmos_grammar.eval import evaluate

    evaluations = []
    for (label, _, scorer), runtime in zip(sides, runtimes, strict=True):
        evaluation = evaluate(
            runtime,
            scorer,
            taskset,
            label=label,
            samples=n,
            batch=args.batch,
            sampling=sampling,
            progress=not args.no_progress,
        )
        evaluations.append(evaluation)
        if evaluation.interrupted:
            break
    return evaluations


def _report(
    args: argparse.Namespace,
    machine: Machine,
    taskset: TaskSet,
    evaluations: list[Evaluation],
    n: int,
) -> int:
    from llmos_grammar.eval.report import document, summarize, summary

    summaries = [summarize(e) for e in evaluations]
    print(summary(summaries, n))
    if args.json:
        doc = document(machine.path, taskset.name, evaluations[0])
        if len(evaluations) > 1:
            doc["baseline"] = document(machine.path, taskset.name, evaluations[1])
        Path(args.json).write_text(json_text(doc, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        from llmos_grammar.eval.plot import plot_comparison

        plot_comparison(summaries, args.plot, f"{machine.name} on {taskset.name}")
    stopped = next((e for e in evaluations if e.interrupted), None)
    if stopped is not None:
        print(
            f"llmos-eval: interrupted: {len(stopped.results)} of {stopped.planned} task(s) "
            f"finished ({stopped.label}); the results above are partial",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """`llmos-eval` with `argv` (sys.argv when None); returns the exit status."""
    from llmos_grammar.cli.main import dispatch

    return dispatch(argv, "eval")
