"""`llmos export ADAPTER_DIR -o OUT.gguf`: a trained LoRA adapter for the llamacpp engine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmos_grammar.cli.exits import EXIT_OK, EXIT_USAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("adapter", metavar="ADAPTER_DIR", help="the --out folder of llmos-train")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT.gguf", help="the GGUF LoRA adapter to write"
    )
    parser.add_argument(
        "--model",
        metavar="GGUF",
        help="the GGUF model the adapter was trained on (default: the embedded default model)",
    )
    parser.add_argument(
        "--outtype",
        choices=("f32", "f16"),
        default="f32",
        help="the adapter's tensors: f32 (exact, default) or f16 (half the size)",
    )


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, in one line; None when nothing is."""
    if not Path(args.adapter).is_dir():
        return f"no such adapter folder: {args.adapter}"
    if not (Path(args.adapter) / "adapter_config.json").is_file():
        return f"{args.adapter} has no adapter_config.json (give the --out folder of llmos-train)"
    out = Path(args.output)
    if out.suffix.lower() != ".gguf":
        return f"-o writes a GGUF file; name it *.gguf (got {args.output})"
    if not out.resolve().parent.is_dir():
        return f"-o: no such folder for {args.output}"
    return None


def run(args: argparse.Namespace) -> int:
    problem = usage_problem(args)
    if problem is not None:
        print(f"llmos export: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from llmos_grammar.ir import ModelRef
    from llmos_grammar.train.export import export_lora

    model = ModelRef(name=args.model) if args.model else None
    done = export_lora(args.adapter, args.output, model=model, outtype=args.outtype)
    print(
        f"wrote {done.path} ({done.bytes / 1e6:.1f} MB): {done.tensors} adapted weights, "
        f"rank {done.rank}, alpha {done.alpha:g}, {args.outtype}, for {done.base.name}"
    )
    print(f"run it on llama.cpp: llmos-run SPEC TASK --adapter {done.path}")
    return EXIT_OK
