"""The machine a run or a session uses: the spec with the command line's overrides."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any


def machine_from_args(args: argparse.Namespace) -> Any:
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
