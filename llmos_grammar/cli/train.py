"""`llmos-train SPEC --tasks FILE.jsonl --out DIR`: RFT or GRPO with LoRA on executed runs."""

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
    from llmos_grammar.train.rewards import RewardTerm
    from llmos_grammar.train.session import TrainOutcome
    from llmos_grammar.train.settings import TrainSettings

DEFAULT_METHOD = "rft"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the spec YAML file (its model must run on transformers)")
    parser.add_argument("--tasks", required=True, metavar="FILE", help="JSONL training tasks")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the adapter goes")
    parser.add_argument(
        "--method",
        choices=("rft", "grpo"),
        default=DEFAULT_METHOD,
        help="rft: fine-tune on the solved runs, round after round; grpo: group-normalized "
        f"rewards, step after step ({DEFAULT_METHOD})",
    )
    _number(parser, "--rounds", int, 3, "N", "rft: rounds of sampling and fine-tuning")
    _number(parser, "--samples", int, 4, "K", "rft: runs sampled per training task each round")
    _number(parser, "--epochs", int, 2, "E", "rft: passes over each round's kept runs")
    _number(parser, "--fit-batch", int, 16, "N", "rft: kept runs per optimizer step")
    _number(parser, "--steps", int, 20, "N", "grpo: steps")
    _number(parser, "--group", int, 8, "G", "grpo: runs per task, rewards normalized in it")
    _number(parser, "--batch", int, 64, "B", "grpo: runs per step, a multiple of G")
    parser.add_argument(
        "--init-adapter", metavar="DIR", help="go on training this adapter (from llmos-train)"
    )
    _number(parser, "--rows", int, 16, "R", "runs decoded together (the engine's batch)")
    _number(parser, "--micro-tokens", int, 512, "T", "tokens per micro-batch of the training pass")
    parser.add_argument(
        "--lr", type=float, metavar="X", help="learning rate (AdamW) (rft 0.0002, grpo 0.0001)"
    )
    _number(parser, "--lora-r", int, 16, "R", "LoRA rank")
    _number(parser, "--seed", int, 0, "S", "seed")
    _number(parser, "--temperature", float, 0.7, "T", "sampling temperature")
    parser.add_argument(
        "--shaping",
        action="append",
        default=[],
        metavar="TERM=W",
        help="grpo: add a shaping reward term with weight W: ran (last program exited 0), "
        "stopped (the run ended by itself); repeatable",
    )
    parser.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="FILE",
        help="held-out JSONL tasks, accuracy before and after training; repeatable",
    )
    add_wall_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def _number(
    parser: argparse.ArgumentParser, flag: str, kind: type, default: object, meta: str, text: str
) -> None:
    parser.add_argument(flag, type=kind, default=default, metavar=meta, help=f"{text} ({default})")


MINIMUMS = {"rounds": 1, "samples": 1, "epochs": 1, "fit_batch": 1, "steps": 1, "group": 2,
            "batch": 1, "rows": 1, "micro_tokens": 1, "lora_r": 1}  # fmt: skip


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, in one line; None when nothing is."""
    for name, low in MINIMUMS.items():
        value = getattr(args, name)
        if value < low:
            return f"--{name.replace('_', '-')} must be at least {low} (got {value})"
    if args.batch % args.group:
        return f"--batch ({args.batch}) must be a multiple of --group ({args.group})"
    if args.lr is not None and args.lr <= 0:
        return f"--lr must be positive (got {args.lr:g})"
    if args.wall_s is not None and args.wall_s <= 0:
        return f"--wall-s must be positive (got {args.wall_s:g})"
    if args.temperature <= 0:
        return f"--temperature must be positive for sampled groups (got {args.temperature:g})"
    return _path_problem(args)


def _path_problem(args: argparse.Namespace) -> str | None:
    if not Path(args.spec).is_file():
        return f"no such spec file: {args.spec}"
    for option, path in [("tasks", args.tasks)] + [("eval", e) for e in args.eval]:
        if not Path(path).is_file():
            return f"--{option}: no such file: {path}"
    if (
        args.init_adapter is not None
        and not (Path(args.init_adapter) / "adapter_config.json").is_file()
    ):
        return f"--init-adapter: {args.init_adapter} has no adapter_config.json"
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


def settings_of(args: argparse.Namespace, terms: tuple[RewardTerm, ...]) -> TrainSettings:
    from llmos_grammar.train.settings import TrainSettings

    return TrainSettings(
        method=args.method, rounds=args.rounds, samples=args.samples, epochs=args.epochs,
        fit_batch=args.fit_batch, steps=args.steps, group=args.group, batch=args.batch,
        temperature=args.temperature, lr=args.lr, lora_r=args.lora_r, rows=args.rows,
        micro_tokens=args.micro_tokens, seed=args.seed, init=args.init_adapter, terms=terms,
    )  # fmt: skip


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
    from llmos_grammar.train.pipeline import require_trl
    from llmos_grammar.train.session import run_training

    require_trl()
    tasks = load_tasks(args.tasks)
    eval_sets = [load_tasks(name) for name in args.eval]
    machine = with_wall(load(args.spec), args.wall_s)
    choose(machine.engine, machine.model, adapter=True)  # a LoRA trains on torch weights
    settings = settings_of(args, terms)
    print(f"{visible(machine.name)}: {plan(settings)} on {visible(tasks.name)} "
          f"({len(tasks.tasks)} tasks)", flush=True)  # fmt: skip
    prepare_for_model()
    quiet_training()
    lm = load_model(machine.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    outcome = run_training(
        machine, lm, tasks, settings, out, eval_sets=eval_sets, progress=not args.no_progress,
        on_record=lambda record: print(record.line(), flush=True),
    )  # fmt: skip
    print(summary(outcome))
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


def quiet_training() -> None:
    """No deprecation notices about what peft itself calls in transformers."""
    import warnings

    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)


def plan(s: TrainSettings) -> str:
    """The method and its sizes, in one line."""
    if s.method == "rft":
        what = (
            f"RFT, {s.rounds} round(s) of {s.samples} run(s) per task at temperature "
            f"{s.temperature:g}, {s.epochs} epoch(s) of {s.fit_batch} runs per step"
        )
    else:
        what = (f"GRPO, {s.steps} step(s) of {s.batch} runs ({s.batch // s.group} tasks x "
                f"{s.group}) at temperature {s.temperature:g}, rewards "
                + ", ".join(f"{t.name}x{t.weight:g}" for t in s.terms))  # fmt: skip
    start = f", from {visible(s.init)}" if s.init else ""
    return f"{what}, LoRA r={s.lora_r}{start}, lr {s.learning_rate:g}"


def summary(outcome: TrainOutcome) -> str:
    """The lines printed at the end: time, held-out accuracy before and after, files."""
    from llmos_grammar.train.stats import table

    done = len(outcome.records)
    unit = "round(s)" if outcome.records and outcome.records[0].method == "rft" else "step(s)"
    lines = [
        f"{done} {unit} in {outcome.seconds:.0f} s "
        f"(held-out evaluation {outcome.eval_seconds:.0f} s)"
        + (" (interrupted)" if outcome.interrupted else "")
    ]
    changes = [h.paired for h in outcome.held_out if h.paired is not None]
    if changes:
        lines.append(table(changes))
    lines.append(f"adapter: {outcome.out}  log: {outcome.log_path}  plot: {outcome.plot_path}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`llmos-train` with `argv` (sys.argv when None); returns the exit status."""
    from llmos_grammar.cli.main import dispatch

    return dispatch(argv, "train")
