"""`llmos check PATH...`: report every problem of specs, policies and grammars."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from llmos_grammar.errors import Diagnostic, SourceLines
from llmos_grammar.visible import visible

if TYPE_CHECKING:
    from llmos_grammar.spec.check import Checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="spec/policy files or folders")
    parser.add_argument(
        "--show-grammar",
        nargs=2,
        metavar=("SPEC", "STATE"),
        help="print the grammar a state is constrained by (derived ones included)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (with source lines and carets), json, or github (workflow annotations)",
    )
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only")


def run(args: argparse.Namespace) -> int:
    from llmos_grammar.spec.check import check_paths

    if args.show_grammar:
        return _show_grammar(*args.show_grammar)
    if not args.paths:
        print("llmos-check: give at least one PATH (or --show-grammar SPEC STATE)", file=sys.stderr)
        return EXIT_USAGE
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        for path in missing:
            print(f"llmos-check: {path}: no such file or folder", file=sys.stderr)
        return EXIT_USAGE
    report, checked = check_paths(args.paths)
    if not checked:
        print("llmos-check: no spec or policy files found", file=sys.stderr)
        return EXIT_USAGE
    sources = SourceLines({c.path: c.doc.text for c in checked if c.doc is not None})
    if args.format == "json":
        _json(report.diagnostics, checked)
    else:
        printer = _text if args.format == "text" else _github
        infos = None
        if not args.quiet:
            infos = [e.format() for c in checked for e in c.exclusions()] + _notes(checked)
        printer(report.diagnostics, sources, [c.path for c in checked], infos)
    failing = report.errors or (args.strict and report.warnings)
    return EXIT_ERROR if failing else EXIT_OK


def _text(
    diags: list[Diagnostic], sources: SourceLines, files: list[str], infos: list[str] | None
) -> None:
    """Problems, then info lines (None: quiet, problems only), then a summary."""
    for d in diags:
        print(visible(d.render(sources)))  # spec text, shown with its control characters escaped
    if infos is None:
        return
    for line in infos:
        print(visible(line))
    errors = sum(d.severity == "error" for d in diags)
    warnings = len(diags) - errors
    status = "ok" if not errors else "failed"
    print(f"{status}: {len(files)} file(s), {errors} error(s), {warnings} warning(s)")


def _show_grammar(spec: str, state: str) -> int:
    """Print the constraint of `state` in `spec`, with its kind and backend (stderr)."""
    from llmos_grammar.spec.check import check_file

    if not Path(spec).is_file():
        print(f"llmos-check: {spec}: no such file", file=sys.stderr)
        return EXIT_USAGE
    checked = check_file(spec)
    if checked.machine is None:
        sources = SourceLines({spec: checked.doc.text} if checked.doc else {})
        for d in checked.diagnostics:
            print(visible(d.render(sources)), file=sys.stderr)
        return EXIT_ERROR
    source = getattr(checked.machine.states.get(state), "constraint", None)
    if source is None:
        print(f"llmos-check: {spec}: no constrained state {state!r}", file=sys.stderr)
        return EXIT_USAGE
    how = checked.backends.get(state)
    backend = f", enforced by {how.backend}" if how else ""
    print(f"// {state}: {source.kind}{backend}", file=sys.stderr)
    print(visible(source.text))
    return EXIT_OK


def _notes(checked: list[Checked]) -> list[str]:
    """One line per state whose `auto` backend fell back to llguidance, with the reason."""
    return [
        f"note: {c.path}: state {state!r} is enforced by llguidance: {how.reason}"
        for c in checked
        for state, how in c.backends.items()
        if how.fell_back
    ]


def _backends(checked: list[Checked]) -> list[dict[str, str]]:
    return [
        {
            "file": c.path,
            "state": state,
            "backend": how.backend,
            "requested": how.requested,
            "reason": how.reason,
        }
        for c in checked
        for state, how in c.backends.items()
    ]


def _json(diags: list[Diagnostic], checked: list[Checked]) -> None:
    rows = [
        {
            "severity": d.severity,
            "message": d.message,
            "file": d.location.file,
            "line": d.location.line,
            "column": d.location.column,
            "path": d.path,
            "code": d.code,
            "hint": d.hint,
        }
        for d in diags
    ]
    exclusions = [
        {
            "file": e.location.file,
            "line": e.location.line,
            "column": e.location.column,
            "state": e.state,
            "close": e.close,
            "terminals": list(e.terminals),
        }
        for c in checked
        for e in c.exclusions()
    ]
    files = [c.path for c in checked]
    document = {"files": files, "diagnostics": rows, "exclusions": exclusions}
    print(json.dumps({**document, "states": _backends(checked)}, indent=2))


def _github(
    diags: list[Diagnostic], sources: SourceLines, files: list[str], infos: list[str] | None
) -> None:
    for d in diags:
        level = "error" if d.severity == "error" else "warning"
        message = visible(d.message + (f" ({d.hint})" if d.hint else ""))
        message = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        title = f"llmos-check {d.code}" if d.code else "llmos-check"
        where = (
            f"file={d.location.file},line={max(d.location.line, 1)},col={max(d.location.column, 1)}"
        )
        print(f"::{level} {where},title={title}::{message}")
    _text([], sources, files, None if infos is None else [])
