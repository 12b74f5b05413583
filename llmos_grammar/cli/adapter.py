"""`--adapter DIR|FILE.gguf` (a trained LoRA) and `--wall-s` for the commands that run a spec."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos_grammar.ir import Machine
    from llmos_grammar.models import LoadedModel


def add_adapter_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--adapter",
        metavar="DIR",
        help="a LoRA adapter: the folder llmos-train wrote (merged into the model, transformers "
        "engine) or the .gguf llmos export wrote from it (applied by the llamacpp engine)",
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
    if adapter.endswith(".gguf"):
        return _load_gguf_adapter(machine, adapter)
    from llmos_grammar.engines.select import choose
    from llmos_grammar.models import load_model
    from llmos_grammar.train.adapter import check_adapter, load_adapter

    check_adapter(adapter)  # before the model loads: a bad folder fails at once
    choose(machine.engine, machine.model, adapter=True)  # llamacpp + adapter is an error
    print(adapter_line(adapter, machine.cache_key), file=sys.stderr, flush=True)
    return load_adapter(load_model(machine.model), adapter)


def adapter_line(adapter: str, spec_key: str = "") -> str:
    """`adapter DIR: trained by ...` (what the adapter's llmos_train.json records; an
    exported .gguf carries it)."""
    from llmos_grammar.train.adapter import describe_adapter, train_info
    from llmos_grammar.train.export import exported_train_info
    from llmos_grammar.visible import visible

    gguf = adapter.endswith(".gguf")
    info = exported_train_info(adapter) if gguf else train_info(adapter)
    return f"adapter {visible(adapter)}: {describe_adapter(info, spec_key)}"


def _load_gguf_adapter(machine: Machine, adapter: str) -> LoadedModel:
    """The machine's GGUF model on llama.cpp with a GGUF LoRA adapter from `llmos export`."""
    from pathlib import Path

    from llmos_grammar.engines.llamacpp import load_llamacpp
    from llmos_grammar.engines.select import choose
    from llmos_grammar.errors import ModelError
    from llmos_grammar.models import resolve

    if not Path(adapter).is_file():
        raise ModelError(f"--adapter: no such file: {adapter}")
    if machine.engine not in ("auto", "llamacpp"):
        raise ModelError(
            f"--adapter {adapter}: a GGUF adapter runs on the llamacpp engine, not "
            f"{machine.engine} (give llmos-train's adapter folder for --engine {machine.engine})"
        )
    if resolve(machine.model)[1] is None:
        raise ModelError(
            f"--adapter {adapter}: a GGUF adapter applies to a GGUF model; "
            f"{machine.model.name!r} is not one (give llmos-train's adapter folder instead)"
        )
    choose("llamacpp", machine.model)  # llama-cpp-python is installed
    print(adapter_line(adapter, machine.cache_key), file=sys.stderr, flush=True)
    return load_llamacpp(machine.model, lora=adapter)
