"""Transfer: a trained adapter against its base model on other task sets, paired task by task.

    python -m llmos_grammar.eval.compare runs/calc [--sets chat,sqlite_qa,humaneval]
        [--limit 20] [--wall-s S] [--json OUT]

Each set runs with its own spec, first on the base model, then with the adapter
(a folder from llmos-train on the transformers engine, or a .gguf from llmos
export on llamacpp, the base then on the same engine), one greedy sample per
task. The table (llmos_grammar.train.stats) gives per set the accuracy before
and after, the change, the discordant tasks, McNemar's p and the bootstrap
interval. The sets are the checkout's examples.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.errors import LlmosError, ModelError
from llmos_grammar.paths import CHECKOUT

if TYPE_CHECKING:
    from llmos_grammar.eval.runner import Evaluation
    from llmos_grammar.ir import Machine
    from llmos_grammar.models import LoadedModel
    from llmos_grammar.train.stats import PairedChange

EXAMPLES = CHECKOUT / "examples"
TRANSFER = ("chat", "sqlite_qa", "humaneval")
LIMIT = 20  # tasks per set unless told: chat 20 of 26, sqlite_qa all 16, humaneval 20 of 164


@dataclass(frozen=True)
class TaskSource:
    """A task set and the spec it runs with."""

    spec: str  # relative to the examples folder
    tasks: str  # a JSONL file relative to it, or "humaneval"


SETS = {
    "chat": TaskSource("chat/spec.yaml", "chat/tasks.jsonl"),
    "sqlite_qa": TaskSource("sqlite_qa/spec.yaml", "sqlite_qa/tasks.jsonl"),
    "humaneval": TaskSource("humaneval/spec.yaml", "humaneval"),
    "calculator": TaskSource("calculator/spec.yaml", "calculator/tasks.jsonl"),
    "calculator-heldout": TaskSource("calculator/spec.yaml", "calculator/heldout.jsonl"),
}


@dataclass(frozen=True)
class Budget:
    """How much of each set runs: its first `limit` tasks, `wall_s` per run (None: the
    spec's limits.wall_s), `batch` rows decoded together."""

    limit: int | None = LIMIT
    wall_s: float | None = None
    batch: int = 8


Loader = Callable[["Machine"], "LoadedModel"]


def compare_adapter(
    adapter: str,
    names: Sequence[str] = TRANSFER,
    budget: Budget = Budget(),
    *,
    progress: bool = True,
) -> list[PairedChange]:
    """One paired row per task set: the base model (before) against `adapter` (after)."""
    from llmos_grammar.train.stats import paired_evaluations

    unknown = [name for name in names if name not in SETS]
    if unknown:
        raise LlmosError(f"unknown task set(s) {', '.join(unknown)}; use: {', '.join(SETS)}")
    gguf = adapter.endswith(".gguf")
    base, adapted = _loaders(adapter, gguf)
    before = _evaluate_all(names, budget, base, "base", progress)
    after = _evaluate_all(names, budget, adapted, "adapter", progress)
    return [paired_evaluations(name, before[name], after[name]) for name in names]


def _loaders(adapter: str, gguf: bool) -> tuple[Loader, Loader]:
    """(base, with the adapter) model loaders on the engine that runs the adapter."""
    from llmos_grammar.models import load_model

    if gguf:
        from llmos_grammar.engines.llamacpp import load_llamacpp

        if not Path(adapter).is_file():
            raise ModelError(f"no such adapter file: {adapter}")
        return (
            lambda m: load_llamacpp(m.model),
            lambda m: load_llamacpp(m.model, lora=adapter),
        )
    from llmos_grammar.train.adapter import check_adapter, load_adapter

    check_adapter(adapter)
    return (
        lambda m: load_model(m.model),
        lambda m: load_adapter(load_model(m.model), adapter),
    )


def _evaluate_all(
    names: Sequence[str], budget: Budget, load: Loader, label: str, progress: bool
) -> dict[str, Evaluation]:
    """Every set on models from `load`, one loaded model per model reference."""
    models: dict[object, LoadedModel] = {}
    results: dict[str, Evaluation] = {}
    try:
        for name in names:
            machine = _machine(SETS[name], budget.wall_s)
            if machine.model not in models:
                models[machine.model] = load(machine)
            results[name] = _evaluate(name, machine, models[machine.model], budget, label, progress)
    finally:
        for lm in models.values():
            lm.close()
    return results


def _machine(source: TaskSource, wall_s: float | None) -> Machine:
    from llmos_grammar.spec import load

    spec = EXAMPLES / source.spec
    if not spec.is_file():
        raise LlmosError(f"no spec {spec}: the transfer sets are a checkout's examples")
    machine = load(str(spec))
    if wall_s is not None:
        machine = replace(machine, budgets=replace(machine.budgets, wall_s=wall_s))
    return machine


def _evaluate(
    name: str, machine: Machine, lm: LoadedModel, budget: Budget, label: str, progress: bool
) -> Evaluation:
    from llmos_grammar.eval import Scorer, evaluate, load_tasks
    from llmos_grammar.eval.scorers import python_action
    from llmos_grammar.runtime import Runtime

    source = SETS[name].tasks
    taskset = load_tasks(source if source == "humaneval" else str(EXAMPLES / source), budget.limit)
    tests = any(task.scorer == "tests" for task in taskset.tasks)
    scorer = Scorer(machine, action=python_action(machine) if tests else None)
    runtime = Runtime(machine, lm)
    try:
        evaluation = evaluate(
            runtime, scorer, taskset, label=f"{name} {label}", batch=budget.batch, progress=progress
        )
    finally:
        runtime.close()
        scorer.close()
    solved = sum(result.solved for result in evaluation.results)
    print(f"{name} ({label}): {solved}/{len(evaluation.results)} in {evaluation.wall_s:.0f} s")
    if evaluation.interrupted:
        raise KeyboardInterrupt
    return evaluation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("adapter", help="llmos-train's --out folder, or llmos export's .gguf")
    parser.add_argument(
        "--sets",
        default=",".join(TRANSFER),
        help=f"comma-separated task sets (default {','.join(TRANSFER)}; also: "
        + ", ".join(name for name in SETS if name not in TRANSFER)
        + ")",
    )
    parser.add_argument(
        "--limit", type=int, default=LIMIT, metavar="N", help=f"first N tasks of each set ({LIMIT})"
    )
    parser.add_argument(
        "--wall-s", type=float, metavar="S", help="wall-clock budget per run (the spec's)"
    )
    parser.add_argument("--batch", type=int, default=8, metavar="B", help="rows decoded together")
    parser.add_argument("--json", metavar="OUT", help="write the rows as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    from llmos_grammar.cli.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

    parser = argparse.ArgumentParser(prog="python -m llmos_grammar.eval.compare")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.limit < 1 or args.batch < 1 or (args.wall_s is not None and args.wall_s <= 0):
        print("compare: --limit, --batch and --wall-s must be positive", file=sys.stderr)
        return EXIT_USAGE
    budget = Budget(args.limit, args.wall_s, args.batch)
    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    wall = "the spec's limits.wall_s" if args.wall_s is None else f"{args.wall_s:g} s"
    print(
        f"{args.adapter} against its base on {', '.join(names)}: the first {args.limit} "
        f"task(s) of each, one sample (the spec's sampling), wall budget per run: {wall}",
        flush=True,
    )
    try:
        rows = compare_adapter(args.adapter, names, budget, progress=not args.no_progress)
    except LlmosError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("compare: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    _report(rows, args.json, budget, args.adapter)
    return EXIT_OK


def _report(rows: Sequence[PairedChange], out: str | None, budget: Budget, adapter: str) -> None:
    import json

    from llmos_grammar.train.stats import table

    print(table(rows))
    if out:
        document = {
            "adapter": adapter,
            "limit": budget.limit,
            "wall_s": budget.wall_s,
            "batch": budget.batch,
            "sets": [row.to_json() for row in rows],
        }
        Path(out).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
