"""`llmos graph SPEC`: the state machine as Mermaid (default) or Graphviz DOT."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file")
    parser.add_argument(
        "--format", choices=("mermaid", "dot"), default="mermaid", help="diagram language"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def run(args: argparse.Namespace) -> int:
    from llmos_grammar import graph
    from llmos_grammar.spec.loader import load

    machine = load(args.spec)
    text = graph.dot(machine) if args.format == "dot" else graph.mermaid(machine)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        print(text, end="")
    return 0
