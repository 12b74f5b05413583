"""`llmos docs`: serve the documentation site of a checkout locally, or build it."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys

from llmos_grammar.cli.exits import EXIT_ERROR, EXIT_USAGE
from llmos_grammar.paths import CHECKOUT

CONFIG = CHECKOUT / "mkdocs.yml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--addr",
        default="127.0.0.1:8000",
        metavar="HOST:PORT",
        help="where to serve the site (rebuilt whenever a page or the code changes)",
    )
    parser.add_argument(
        "--build",
        metavar="DIR",
        help="build the site into DIR (strict: a broken link fails) instead of serving it",
    )


def command(args: argparse.Namespace) -> list[str]:
    """The mkdocs command line for `args`."""
    mkdocs = [sys.executable, "-m", "mkdocs"]
    if args.build:
        return [*mkdocs, "build", "--strict", "-f", str(CONFIG), "--site-dir", args.build]
    return [*mkdocs, "serve", "-f", str(CONFIG), "--dev-addr", args.addr]


def run(args: argparse.Namespace) -> int:
    if not CONFIG.is_file():
        print(
            f"llmos docs: no {CONFIG.name} in {CHECKOUT}: the site is built from a checkout "
            "of the repository",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if importlib.util.find_spec("mkdocs") is None:
        print(
            "llmos docs: mkdocs is not installed; install the docs extra: "
            "pip install -e '.[docs]' (bash setup.sh does)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.call(command(args), cwd=CHECKOUT, env=env)
