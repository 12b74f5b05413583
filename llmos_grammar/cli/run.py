"""`llmos-run SPEC TASK`: stream a run in the terminal, or as JSON lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.cli.adapter import add_adapter_argument, load_with_adapter
from llmos_grammar.cli.exits import EXIT_BUDGET, EXIT_OK, EXIT_REFUSED, EXIT_STOPPED, EXIT_USAGE
from llmos_grammar.cli.options import add_engine_arguments, machine_from_args
from llmos_grammar.cli.process import prepare_for_model
from llmos_grammar.cli.view import JsonView, TextView

if TYPE_CHECKING:
    from llmos_grammar.ir import ActionPolicy
    from llmos_grammar.runtime.events import Result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the spec YAML file")
    parser.add_argument(
        "task",
        nargs="?",
        help="the task (fills {task} in the prompt's user template); "
        "none on a terminal opens an interactive session (llmos shell)",
    )
    add_engine_arguments(parser)
    add_adapter_argument(parser)
    parser.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--max-tokens", type=int, help="total token budget")
    parser.add_argument(
        "--samples", type=int, help="run N samples as rows of one batch and vote (spec's samples.n)"
    )
    parser.add_argument("--yes", action="store_true", help="approve actions whose policy asks")
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument("--trace", metavar="FILE", help="write the full trace as JSONL")
    parser.add_argument(
        "--html",
        metavar="FILE",
        help="write the run as one self-contained HTML page (records step details)",
    )
    parser.add_argument(
        "--details",
        action="store_true",
        help="record each sampled token's probability, top alternatives, mask size and time "
        "(in --trace and --json; --html does)",
    )
    parser.add_argument("--no-color", action="store_true", help="plain text output")
    parser.add_argument("--history", metavar="FILE", help="the session's history file (no task)")


def exit_code(stop_reason: str, last_refused: bool = False) -> int:
    """0 for a finished run, 3 when an action was refused, 4 when a budget ran out.

    When the run's last action was refused, the refusal is why the run did not
    get what it needed (even if the model then answered, or retried until a
    budget ran out): the exit status is 3.
    """
    if stop_reason == "refused" or last_refused:
        return EXIT_REFUSED
    if stop_reason in ("final", "eos"):
        return EXIT_OK
    return EXIT_BUDGET


def result_exit_code(result: Result) -> int:
    """The exit status of a finished run (see `exit_code`)."""
    actions = result.actions
    return exit_code(result.stop_reason, bool(actions) and actions[-1].result.refused is not None)


def run(args: argparse.Namespace) -> int:
    """Load the spec, run the task, stream events; return the exit code."""
    if args.task is None:
        if not sys.stdin.isatty():
            print("llmos-run: give a TASK (a session needs a terminal)", file=sys.stderr)
            return EXIT_USAGE
        from llmos_grammar.cli.shell import run as shell

        return shell(args)
    if args.samples is not None and args.samples < 1:
        print(f"llmos-run: --samples must be at least 1 (got {args.samples})", file=sys.stderr)
        return EXIT_USAGE
    machine = machine_from_args(args)
    n = args.samples if args.samples is not None else machine.samples.n
    if n > 1:
        if args.trace or args.html:
            option = "--trace" if args.trace else "--html"
            print(f"llmos-run: {option} records one run; use it without samples", file=sys.stderr)
            return EXIT_USAGE
        from llmos_grammar.cli.run_samples import run_samples

        winner = run_samples(args, machine, n)
        return EXIT_STOPPED if winner is None else result_exit_code(winner)
    from llmos_grammar.actions import terminal_approver
    from llmos_grammar.engines.vllm.args import parse_engine_args
    from llmos_grammar.runtime import DoneEvent, Runtime
    from llmos_grammar.trace import TraceWriter
    from llmos_grammar.viewer import run_header
    from llmos_grammar.viewer.record import EventLog

    colour = not args.no_color and not args.json and sys.stdout.isatty()
    view = JsonView(sys.stdout) if args.json else TextView(sys.stdout, machine, colour)
    ask = terminal_approver(yes=args.yes)

    def approve(policy: ActionPolicy, text: str) -> bool:
        view.stop()  # no spinner over the question
        return ask(policy, text)

    engine_args = parse_engine_args(args.engine_arg)
    for option in ("trace", "html"):
        out = getattr(args, option)
        if out is not None and not Path(out).resolve().parent.is_dir():
            print(f"llmos-run: --{option}: no such folder for {out}", file=sys.stderr)
            return EXIT_USAGE
    details = args.html is not None or args.details
    trace: TraceWriter | None = None
    page: EventLog | None = None
    prepare_for_model()
    code = EXIT_STOPPED
    try:
        model = load_with_adapter(machine, args.adapter)
        with Runtime(
            machine, model, approve=approve, engine_args=engine_args, details=details
        ) as runtime:
            header = run_header(machine, args.task, runtime)
            trace = TraceWriter(args.trace, header) if args.trace else None
            page = EventLog(header) if args.html else None
            if isinstance(view, TextView):
                view.engine = runtime.engine_name
            for event in runtime.stream(args.task):
                if trace is not None:
                    trace.write(event)
                if page is not None:
                    page.add(event)
                view.show(event)
                if isinstance(event, DoneEvent):
                    code = result_exit_code(event.result)
    finally:
        view.stop()
        if trace is not None:
            trace.close()
        if page is not None:  # an interrupted run's page too: what it did so far
            from llmos_grammar.viewer import run_html

            Path(args.html).write_text(run_html(page.trace()), encoding="utf-8")
    return code


__all__ = ["JsonView", "TextView", "exit_code", "result_exit_code", "run"]
