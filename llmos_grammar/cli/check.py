"""`llmos check PATH...`: report every problem of specs, policies and grammars."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmos_grammar.errors import Diagnostic
from llmos_grammar.yamldoc import MAX_FILE_BYTES

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
Lines = dict[str, list[str]]  # the lines of each file, by path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="spec/policy files or folders")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only")


def run(args: argparse.Namespace) -> int:
    from llmos_grammar.check import check_paths

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        for path in missing:
            print(f"llmos-check: {path}: no such file or folder", file=sys.stderr)
        return EXIT_USAGE
    report, checked = check_paths(args.paths)
    if not checked:
        print("llmos-check: no spec or policy files found", file=sys.stderr)
        return EXIT_USAGE
    texts = {c.path: c.doc.text.splitlines() for c in checked if c.doc is not None}
    printer = {"text": _text, "json": _json, "github": _github}[args.format]
    printer(report.diagnostics, texts, [c.path for c in checked], args.quiet)
    failing = report.errors or (args.strict and report.warnings)
    return EXIT_ERRORS if failing else EXIT_OK


def _source_line(d: Diagnostic, texts: Lines) -> str | None:
    if d.location.line <= 0:
        return None
    lines = texts.get(d.location.file)
    if lines is None:
        try:
            with Path(d.location.file).open("rb") as handle:  # a file too large for the
                head = handle.read(MAX_FILE_BYTES)  # checker is shown up to its limit
        except OSError:
            return None
        lines = head.decode("utf-8", "replace").splitlines()
        texts[d.location.file] = lines  # split once: a file may have thousands of problems
    return lines[d.location.line - 1] if d.location.line <= len(lines) else None


def _text(diags: list[Diagnostic], texts: Lines, files: list[str], quiet: bool) -> None:
    for d in diags:
        print(d.format(_source_line(d, texts)))
    if quiet:
        return
    errors = sum(d.severity == "error" for d in diags)
    warnings = len(diags) - errors
    status = "ok" if not errors else "failed"
    print(f"{status}: {len(files)} file(s), {errors} error(s), {warnings} warning(s)")


def _json(diags: list[Diagnostic], texts: Lines, files: list[str], quiet: bool) -> None:
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
    print(json.dumps({"files": files, "diagnostics": rows}, indent=2))


def _github(diags: list[Diagnostic], texts: Lines, files: list[str], quiet: bool) -> None:
    for d in diags:
        level = "error" if d.severity == "error" else "warning"
        message = d.message + (f" ({d.hint})" if d.hint else "")
        message = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        title = f"llmos-check {d.code}" if d.code else "llmos-check"
        where = (
            f"file={d.location.file},line={max(d.location.line, 1)},col={max(d.location.column, 1)}"
        )
        print(f"::{level} {where},title={title}::{message}")
    _text([], texts, files, quiet)
