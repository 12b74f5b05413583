"""`llmos` and its aliases: one parser, one subcommand module each, exit codes."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from llmos_grammar import __version__
from llmos_grammar.cli.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_PIPE, EXIT_USAGE
from llmos_grammar.errors import LlmosError, SourceLines
from llmos_grammar.visible import visible

COMMANDS = {
    "run": ("llmos_grammar.cli.run", "run a spec on a model: llmos run SPEC TASK"),
    "shell": ("llmos_grammar.cli.shell", "an interactive session: llmos shell SPEC"),
    "serve": ("llmos_grammar.cli.serve", "an OpenAI-compatible HTTP server: llmos serve SPEC..."),
    "check": ("llmos_grammar.cli.check", "validate specs, policies and grammars"),
    "eval": ("llmos_grammar.cli.eval", "success rate of a spec on a task set, pass@k, votes"),
    "train": ("llmos_grammar.cli.train", "RFT or GRPO with LoRA on a spec's executed runs"),
    "graph": ("llmos_grammar.cli.graph", "print a spec's state machine as Mermaid or DOT"),
    "view": ("llmos_grammar.cli.view_html", "a trace as one HTML page: llmos view TRACE -o FILE"),
    "export": ("llmos_grammar.cli.export", "a trained LoRA adapter as a GGUF for llama.cpp"),
    "exec": ("llmos_grammar.cli.exec", "run one policy action on code, print JSON"),
    "sandbox": ("llmos_grammar.cli.sandbox", "inspect the sandbox: llmos sandbox doctor"),
    "docs": ("llmos_grammar.cli.docs", "serve this documentation site locally (mkdocs)"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    if only is not None:
        module = importlib.import_module(COMMANDS[only][0])
        parser = argparse.ArgumentParser(prog=f"llmos-{only}", description=COMMANDS[only][1])
        module.add_arguments(parser)
        parser.set_defaults(command_module=module)
        return parser
    parser = argparse.ArgumentParser(prog="llmos", description="Grammar-driven LLM shell.")
    parser.add_argument("--version", action="version", version=f"llmos-grammar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)  # each imports its heavy parts lazily
        child = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(child)
        child.set_defaults(command_module=module)
    return parser


def dispatch(argv: Sequence[str] | None, only: str | None = None) -> int:
    parser = build_parser(only)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    _interruptible()
    try:
        return int(args.command_module.run(args))
    except LlmosError as exc:
        if not exc.diagnostics:
            print(f"llmos: {visible(str(exc))}", file=sys.stderr)
        sources = SourceLines()
        for diagnostic in exc.diagnostics:  # each with its source line and a caret
            print(f"llmos: {visible(diagnostic.render(sources))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("llmos: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `llmos ... | head`: the reader left; say nothing more
        _quiet_stdout()
        return EXIT_PIPE


def _interruptible() -> None:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt: exit 130, sandboxes ended on the way out.

    A process started in the background by a shell without job control (a
    script's `cmd &`, many test and CI runners) inherits SIGINT as ignored,
    and Python then keeps ignoring it: the runtime would go on, sandboxes
    and all, after an interrupt it can never see.
    """
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(argv)


def _entry(only: str) -> int:
    return dispatch(None, only)


def run_main() -> int:
    return _entry("run")


def check_main() -> int:
    return _entry("check")


def graph_main() -> int:
    return _entry("graph")


def eval_main() -> int:
    return _entry("eval")


def train_main() -> int:
    return _entry("train")


if __name__ == "__main__":
    sys.exit(main())
