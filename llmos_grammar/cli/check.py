"""`llmos check PATH...`: report every problem of specs, policies and grammars;
`--explain SPEC STATE TEXT`: why a state's constraint accepts or rejects a text."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from llmos_grammar.errors import Diagnostic, LlmosError, SourceLines, byte_location
from llmos_grammar.visible import json_text, visible

MAX_TEXT = 1 << 20  # the longest text --explain-file reads

if TYPE_CHECKING:
    from llmos_grammar.constraints.explain import Explanation
    from llmos_grammar.ir import Machine
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
        "--explain",
        nargs=3,
        metavar=("SPEC", "STATE", "TEXT"),
        help="run TEXT through a state's constraint as the decoder would, without a model, "
        "and say why it is accepted or rejected (exit 0 accepted, 1 rejected)",
    )
    parser.add_argument(
        "--explain-file",
        nargs=3,
        metavar=("SPEC", "STATE", "FILE"),
        help="--explain with the text read from FILE (UTF-8)",
    )
    parser.add_argument(
        "--tokens",
        action="store_true",
        help="with --explain: the same walk token by token with the spec's model's tokenizer",
    )
    parser.add_argument("--model", help="with --explain: --tokens with this model's tokenizer")
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
    if args.explain or args.explain_file:
        return _explain(args)
    if args.tokens or args.model:
        print("llmos-check: --tokens and --model go with --explain", file=sys.stderr)
        return EXIT_USAGE
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


def _explain(args: argparse.Namespace) -> int:
    """`--explain`/`--explain-file`: exit 0 accepted (whole or prefix), 1 rejected, 2 when
    the spec, the state, the file or the model cannot be used."""
    from llmos_grammar.constraints.explain import explain, explainable, render, to_json
    from llmos_grammar.spec.check import check_file

    spec, state, value = args.explain or args.explain_file
    if not Path(spec).is_file():
        print(f"llmos-check: {spec}: no such file", file=sys.stderr)
        return EXIT_USAGE
    text = value if args.explain else _read_text(value)
    if text is None:
        return EXIT_USAGE
    checked = check_file(spec)
    if checked.machine is None:
        sources = SourceLines({spec: checked.doc.text} if checked.doc else {})
        for d in checked.diagnostics:
            print(visible(d.render(sources)), file=sys.stderr)
        return EXIT_USAGE
    names = explainable(checked.machine)
    if state not in names:
        other = checked.machine.states.get(state)
        article = "an" if other and other.type[:1] in "aeiou" else "a"
        what = f"is {article} {other.type} state" if other else "is not a state of this spec"
        listed = ", ".join(names) or "none"
        print(
            f"llmos-check: {spec}: {state!r} {what}; text and grammar states: {listed}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    how = checked.backends.get(state)
    try:
        found = explain(checked.machine, state, text, how.backend if how else None)
        if args.tokens or args.model:
            found = _with_tokens(found, checked.machine, state, text, args.model)
    except LlmosError as exc:
        print(f"llmos-check: {visible(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    print(json_text(to_json(found), indent=2) if args.format == "json" else render(found))
    return EXIT_ERROR if found.verdict == "rejected" else EXIT_OK


def _with_tokens(
    found: Explanation, machine: Machine, state: str, text: str, model: str | None
) -> Explanation:
    """`found` with the token walk of `text` (imports torch and transformers)."""
    from dataclasses import replace

    from llmos_grammar.constraints.explain.tokenwalk import token_walk
    from llmos_grammar.ir import GrammarState, ModelRef, TextState

    visited = machine.states[state]
    assert isinstance(visited, TextState | GrammarState)  # explainable
    ref = ModelRef(name=model) if model else machine.model
    return replace(found, tokens=token_walk(visited, text, ref))


def _read_text(path: str) -> str | None:
    """The UTF-8 text of `path`, or None after saying (with the place) why it cannot be read."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_TEXT + 1)
    except OSError as exc:
        print(f"llmos-check: {path}: cannot read the text: {exc.strerror or exc}", file=sys.stderr)
        return None
    if len(data) > MAX_TEXT:
        print(f"llmos-check: {path}: the text is over {MAX_TEXT >> 20} MiB", file=sys.stderr)
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = byte_location(data, exc.start, path)
        print(
            f"llmos-check: {where}: the text is not UTF-8 (byte 0x{data[exc.start]:02x})",
            file=sys.stderr,
        )
        return None


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
