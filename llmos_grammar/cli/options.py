"""The machine a run or a session uses: the spec with the command line's overrides."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos_grammar.ir import Machine


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --engine and --engine-arg, shared by llmos-run and llmos-eval."""
    from llmos_grammar.engines.select import ENGINES

    parser.add_argument("--model", help="override the spec's model (name, hub id, folder, .gguf)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="what runs the model (default: the spec's engine, auto: llama.cpp for GGUF models)",
    )
    parser.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the vllm engine (repeatable): url=http://HOST:PORT of a running "
        "server, or a vLLM server option such as tensor_parallel_size=2",
    )


def machine_from_args(args: argparse.Namespace) -> Machine:
    """Load `args.spec` and apply --model, --engine, --temperature, --seed, --max-tokens."""
    from llmos_grammar.ir import ModelRef
    from llmos_grammar.spec.loader import load

    machine = load(args.spec)
    if args.model:
        machine = replace(machine, model=ModelRef(name=args.model))
    if args.engine:
        machine = replace(machine, engine=args.engine)
    sampling = machine.sampling
    if args.temperature is not None:
        sampling = replace(sampling, temperature=args.temperature)
    if args.seed is not None:
        sampling = replace(sampling, seed=args.seed)
    budgets = machine.budgets
    if args.max_tokens is not None:
        budgets = replace(budgets, max_tokens=args.max_tokens)
    return replace(machine, sampling=sampling, budgets=budgets)
