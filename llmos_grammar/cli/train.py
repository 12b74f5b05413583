"""`llmos-train SPEC --tasks FILE.jsonl --out DIR`: GRPO (TRL) with LoRA on executed rollouts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.cli.adapter import add_wall_argument, with_wall
from llmos_grammar.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from llmos_grammar.cli.process import prepare_for_model
from llmos_grammar.visible import visible

if TYPE_CHECKING:
    from llmos_grammar.eval.tasks import TaskSet
    from llmos_grammar.train.rewards import RewardTerm
    from llmos_grammar.train.session import TrainOutcome


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the spec YAML file (its model must run on transformers)")
    parser.add_argument("--tasks", required=True, metavar="FILE", help="JSONL training tasks")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the adapter goes")
    parser.add_argument("--steps", type=int, default=20, metavar="N", help="GRPO steps (20)")
    parser.add_argument(
        "--group", type=int, default=4, metavar="G", help="completions per task, GRPO's group (4)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=8,
        metavar="B",
        help="completions per step and process, a multiple of G; also rows decoded together (8)",
    )
    parser.add_argument("--lr", type=float, default=1e-4, metavar="X", help="learning rate (1e-4)")
    parser.add_argument("--lora-r", type=int, default=16, metavar="R", help="LoRA rank (16)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed (0)")
    parser.add_argument(
        "--temperature", type=float, default=0.7, metavar="T", help="rollout temperature (0.7)"
    )
    parser.add_argument(
        "--shaping",
        action="append",
        default=[],
        metavar="TERM=W",
        help="add a shaping reward term with weight W: ran (last program exited 0), "
        "stopped (the run ended by itself); repeatable",
    )
    parser.add_argument(
        "--eval", metavar="FILE", help="held-out JSONL tasks: accuracy before and after training"
    )
    add_wall_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, in one line; None when nothing is."""
    for name, low in (("steps", 1), ("group", 2), ("batch", 1), ("lora_r", 1)):
        value = getattr(args, name)
        if value < low:
            return f"--{name.replace('_', '-')} must be at least {low} (got {value})"
    if args.batch % args.group:
        return f"--batch ({args.batch}) must be a multiple of --group ({args.group})"
    if args.lr <= 0:
        return f"--lr must be positive (got {args.lr:g})"
    if args.wall_s is not None and args.wall_s <= 0:
        return f"--wall-s must be positive (got {args.wall_s:g})"
    if args.temperature <= 0:
        return f"--temperature must be positive for sampled groups (got {args.temperature:g})"
    if not Path(args.spec).is_file():
        return f"no such spec file: {args.spec}"
    for option in ("tasks", "eval"):
        path = getattr(args, option)
        if path is not None and not Path(path).is_file():
            return f"--{option}: no such file: {path}"
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out: {out} exists and is not a folder"
    return None


def shaping_terms(specs: Sequence[str]) -> tuple[RewardTerm, ...]:
    """`correct` (weight 1) and the declared shaping terms; ValueError names a bad one."""
    from llmos_grammar.train.rewards import SHAPING, RewardTerm

    terms = [RewardTerm("correct", 1.0)]
    for spec in specs:
        name, _, weight = spec.partition("=")
        if name not in SHAPING:
            known = ", ".join(SHAPING)
            raise ValueError(f"--shaping {spec}: unknown term {name!r}; known: {known}")
        try:
            terms.append(RewardTerm(name, float(weight) if weight else 0.1))
        except ValueError:
            raise ValueError(f"--shaping {spec}: the weight must be a number") from None
    return tuple(terms)


def run(args: argparse.Namespace) -> int:
    problem = usage_problem(args)
    terms: tuple[RewardTerm, ...] = ()
    if problem is None:
        try:
            terms = shaping_terms(args.shaping)
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        print(f"llmos-train: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from llmos_grammar.engines.select import choose
    from llmos_grammar.eval import load_tasks
    from llmos_grammar.models import load_model
    from llmos_grammar.spec import load
    from llmos_grammar.train.pipeline import TrainConfig, require_trl
    from llmos_grammar.train.session import run_training

    require_trl()
    tasks = load_tasks(args.tasks)
    eval_set = load_tasks(args.eval) if args.eval else None
    machine = with_wall(load(args.spec), args.wall_s)
    choose(machine.engine, machine.model, adapter=True)  # a LoRA trains on torch weights
    config = TrainConfig(
        steps=args.steps, group=args.group, batch=args.batch, lr=args.lr,
        lora_r=args.lora_r, seed=args.seed, temperature=args.temperature, terms=terms,
    )  # fmt: skip
    print(
        f"{visible(machine.name)}: GRPO on {visible(tasks.name)} ({len(tasks.tasks)} tasks), "
        f"{config.steps} steps of "
        f"{config.batch} completions ({config.batch // config.group} tasks x {config.group}), "
        f"LoRA r={config.lora_r}, lr {config.lr:g}, rewards "
        + ", ".join(f"{t.name}x{t.weight:g}" for t in terms),
        flush=True,
    )
    prepare_for_model()
    quiet_training()
    lm = load_model(machine.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    outcome = run_training(
        machine, lm, tasks, config, out, eval_set=eval_set, progress=not args.no_progress
    )
    if outcome.main:
        print(summary(outcome, eval_set))
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


def quiet_training() -> None:
    """No deprecation notices about options that TRL itself sets (gradient checkpointing)."""
    import warnings

    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)


def summary(outcome: TrainOutcome, eval_set: TaskSet | None) -> str:
    """The lines printed at the end: reward first vs last steps, held-out accuracy, files."""
    records = outcome.records
    lines = [
        f"{len(records)} step(s) in {outcome.seconds:.0f} s"
        + (" (interrupted)" if outcome.interrupted else "")
    ]
    if records:
        k = max(1, min(5, len(records) // 2))
        first = sum(r.metric("reward_mean") for r in records[:k]) / k
        last = sum(r.metric("reward_mean") for r in records[-k:]) / k
        lines.append(f"reward (mean of {k} steps): first {first:.3f}, last {last:.3f}")
    paired = outcome.held_out
    if paired is not None and eval_set is not None:
        n = len(eval_set.tasks)
        lines.append(
            f"held-out {eval_set.name} ({n} tasks): before {paired.before:.0%}, after "
            f"{paired.after:.0%}, change {paired.after - paired.before:+.0%} "
            f"(95% paired bootstrap {paired.low:+.0%} to {paired.high:+.0%}; "
            f"{paired.gained} gained, {paired.lost} lost)"
        )
    lines.append(f"adapter: {outcome.out}  log: {outcome.log_path}  plot: {outcome.plot_path}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`llmos-train` with `argv` (sys.argv when None); returns the exit status."""
    from llmos_grammar.cli.main import dispatch

    return dispatch(argv, "train")
