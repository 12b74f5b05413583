"""`--adapter DIR` (a trained LoRA) and `--wall-s` for the commands that run a spec."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos_grammar.ir import Machine
    from llmos_grammar.models import LoadedModel


def add_adapter_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--adapter",
        metavar="DIR",
        help="a LoRA adapter from llmos-train, merged into the model (transformers engine)",
    )


def add_wall_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wall-s",
        type=float,
        metavar="S",
        help="the wall-clock budget of each run (default: the spec's limits.wall_s)",
    )


def with_wall(machine: Machine, wall_s: float | None) -> Machine:
    """`machine` with its wall-clock budget replaced (unchanged when `wall_s` is None)."""
    from dataclasses import replace

    if wall_s is None:
        return machine
    return replace(machine, budgets=replace(machine.budgets, wall_s=wall_s))


def load_with_adapter(machine: Machine, adapter: str | None) -> LoadedModel | None:
    """The machine's model with `adapter` merged in; None without an adapter (the spec's)."""
    if adapter is None:
        return None
    from llmos_grammar.engines.select import choose
    from llmos_grammar.models import load_model
    from llmos_grammar.train.adapter import check_adapter, load_adapter

    check_adapter(adapter)  # before the model loads: a bad folder fails at once
    choose(machine.engine, machine.model, adapter=True)  # llamacpp + adapter is an error
    return load_adapter(load_model(machine.model), adapter)
