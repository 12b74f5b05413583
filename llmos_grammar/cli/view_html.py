"""`llmos view TRACE.jsonl -o run.html`: a run's trace as one self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmos_grammar.cli.exits import EXIT_OK, EXIT_USAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="a trace (llmos-run --trace FILE)")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="the HTML page to write (default: the trace's name with .html)",
    )
    parser.add_argument(
        "--spec",
        metavar="SPEC",
        help="draw this spec's state diagram (default: the trace's own, else the spec it names)",
    )


def run(args: argparse.Namespace) -> int:
    source = Path(args.trace)
    output = Path(args.output) if args.output else source.with_suffix(".html")
    problem = _problem(source, output, args.spec)
    if problem is not None:
        print(f"llmos view: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from llmos_grammar.trace import read_trace
    from llmos_grammar.viewer import run_html
    from llmos_grammar.viewer.graph_data import StateGraph, state_graph

    trace = read_trace(source)
    graph: StateGraph | None = None
    if args.spec:
        from llmos_grammar.spec import load

        graph = state_graph(load(args.spec))
    output.write_text(run_html(trace, graph), encoding="utf-8")
    print(f"llmos view: wrote {output} ({len(trace.events)} events)")
    return EXIT_OK


def _problem(source: Path, output: Path, spec: str | None) -> str | None:
    if not source.is_file():
        return f"no such trace file: {source}"
    if spec is not None and not Path(spec).is_file():
        return f"--spec: no such spec file: {spec}"
    if not output.resolve().parent.is_dir():
        return f"-o: no such folder for {output}"
    if output.resolve() == source.resolve():
        return f"-o: {output} is the trace itself; name another file"
    return None
