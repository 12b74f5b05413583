"""`llmos exec --policy FILE --action NAME [FILE|-]`: run one action, print its result as JSON."""

from __future__ import annotations

import argparse
import sys

from llmos_grammar.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_REFUSED
from llmos_grammar.errors import ActionError
from llmos_grammar.visible import json_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `llmos exec`."""
    parser.add_argument("--policy", required=True, help="policy YAML file")
    parser.add_argument("--action", required=True, help="action name (a key under `actions:`)")
    parser.add_argument(
        "input", nargs="?", default="-", help="file with the action's text; - for stdin"
    )
    parser.add_argument(
        "--yes", action="store_true", help="approve actions whose policy says confirm"
    )
    parser.add_argument("--no-bwrap", action="store_true", help="run without bubblewrap (degraded)")


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError as exc:
        raise ActionError(f"{path}: cannot read the action's input: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    """Run the action once and print its ActionResult as JSON; exit 0 ok, 1 failed, 3 refused."""
    from llmos_grammar.actions import ActionRunner, terminal_approver
    from llmos_grammar.sandbox import probe, without_bwrap
    from llmos_grammar.spec.loader import load_policy

    policy = load_policy(args.policy)
    text = _read_input(args.input)
    caps = without_bwrap(probe()) if args.no_bwrap else None
    approve = terminal_approver(args.yes)
    with ActionRunner(policy, approve=approve, caps=caps, warm=False) as runner:
        result = runner.run(args.action, text)
    print(json_text(result.to_json(), indent=2))  # control and bidi characters as \uXXXX
    if result.refused is not None:
        return EXIT_REFUSED
    return EXIT_OK if result.ok else EXIT_ERROR
