"""The CLI reference: every command and flag, read from the argparse parsers."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llmos_docs.table import code, table

ROOT = Path(__file__).resolve().parents[3]
COLUMNS = "88"  # usage lines wrap at this width, whatever the terminal


@dataclass(frozen=True)
class Command:
    """One command or subcommand: its words after `llmos` and its parser."""

    words: tuple[str, ...]
    parser: argparse.ArgumentParser


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every parser under `parser`, depth first, `parser` itself included."""
    yield Command(words, parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*words, name))


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments a user writes (not --help, not the subcommand slot)."""
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def undocumented() -> list[str]:
    """Every flag or positional argument of every command that has no help text."""
    from llmos_grammar.cli.main import build_parser

    found = []
    for command in commands(build_parser()):
        for action in flags(command.parser):
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                name = "/".join(action.option_strings) or action.dest
                found.append(" ".join(("llmos", *command.words, name)))
    return found


def aliases() -> dict[str, str]:
    """Subcommand -> its own script (`run` -> `llmos-run`), from pyproject.toml."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    found = {}
    for script, target in scripts.items():
        function = target.partition(":")[2]
        if function.endswith("_main"):
            found[function.removesuffix("_main")] = script
    return found


def _usage(parser: argparse.ArgumentParser) -> str:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS
    try:
        lines = parser.format_usage().strip().removeprefix("usage: ").splitlines()
        return "\n".join(
            [lines[0], *(line.removeprefix(" " * len("usage: ")) for line in lines[1:])]
        )
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def _names(action: argparse.Action) -> str:
    if action.option_strings:
        return ", ".join(code(s) for s in action.option_strings)
    return code(action.metavar if isinstance(action.metavar, str) else action.dest.upper())


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None and not isinstance(action.choices, dict):
        return ", ".join(code(str(c)) for c in action.choices)
    metavar = action.metavar
    if isinstance(metavar, tuple):
        return code(" ".join(metavar))
    if action.option_strings:
        return code(metavar or action.dest.upper())
    return {"*": "zero or more", "+": "one or more", "?": "optional"}.get(str(action.nargs), "")


def _default(action: argparse.Action) -> str:
    default = action.default
    if action.nargs == 0 or default in (None, argparse.SUPPRESS, [], ""):
        return ""
    return code(str(default))


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    return text % {"default": action.default, "prog": ""} if "%(" in text else text


def _section(command: Command, scripts: dict[str, str]) -> str:
    name = " ".join(("llmos", *command.words))
    out = [f"## `{name}`\n"]
    if len(command.words) == 1 and command.words[0] in scripts:
        out.append(f"Also `{scripts[command.words[0]]}`.\n")
    if command.parser.description:
        text = command.parser.description.rstrip(".")
        out.append(text[0].upper() + text[1:] + ".\n")
    out.append(f"```text\n{_usage(command.parser)}\n```\n")
    rows = [[_names(a), _value(a), _default(a), _help(a)] for a in flags(command.parser)]
    if rows:
        out.append(table(["argument", "value", "default", "what it does"], rows))
    return "\n".join(out)


def render() -> str:
    from llmos_grammar.cli.main import build_parser

    scripts = aliases()
    sections = [_section(c, scripts) for c in commands(build_parser())]
    return "\n".join(sections)
