"""Validate a grammar source with llguidance (and lark): located diagnostics, named constructs."""

from __future__ import annotations

import json
import re

from llmos_grammar.errors import Diagnostic, GrammarError, Location, Severity
from llmos_grammar.grammar.larktext import definitions
from llmos_grammar.grammar.source import INCLUDE_MARK
from llmos_grammar.grammar.translate import lark_text
from llmos_grammar.ir import GrammarSource

_POSITION = re.compile(r"^(?:at )?(\d+)\((\d+)\): ")
# (regex over an llguidance message, construct it concerns, what to do)
UNSUPPORTED: tuple[tuple[str, str, str], ...] = (
    ("params not supported", "rule template (`name{param}: ...`)", "write one rule per use"),
    ("priority not supported", "priority (`NAME.2: ...`)", "drop the priority"),
    ("declare statement", "`%declare`", "define the terminal"),
    ("override statement", "`%override`", "edit the rule itself"),
    ("extend statement", "`%extend`", "add the alternatives to the rule"),
    ("look-around", "regex look-around", "use `&` and `~` on terminals instead"),
    (
        r"Unknown common regex: (?!common\.)",
        "`%import` of a file",
        "load the grammar from a file with `grammar:` (its imports are inlined then)",
    ),
)


def validate(source: GrammarSource) -> list[Diagnostic]:
    """Every problem llguidance (and, for Lark, lark) finds in `source`; never raises."""
    if source.kind == "json_schema":
        problems = _json_problems(source)
        if problems:
            return problems
    try:  # Lark as written, so that llguidance's line numbers are the source's
        grammar = source.text if source.kind == "lark" else lark_text(source)
    except GrammarError as exc:
        return [Diagnostic("error", exc.message, source.location, code="grammar")]
    import llguidance as llg

    try:
        is_error, messages = llg.LLMatcher.validate_grammar_with_warnings(grammar)
    except (ValueError, RuntimeError) as exc:  # API-level refusal of the grammar text
        return [Diagnostic("error", f"grammar rejected: {exc}", source.location, code="grammar")]
    severity: Severity = "error" if is_error else "warning"
    return [_diagnostic(source, severity, message) for message in messages]


def _json_problems(source: GrammarSource) -> list[Diagnostic]:
    """JSON syntax errors (with line/column) and JSON Schema meta-schema violations."""
    try:
        schema = json.loads(source.text)
    except json.JSONDecodeError as exc:
        where = _text_location(source, exc.lineno, exc.colno)
        return [Diagnostic("error", f"JSON schema is not JSON: {exc.msg}", where, code="grammar")]
    import jsonschema

    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    found = []
    for error in validator(validator.META_SCHEMA).iter_errors(schema):
        path = list(error.absolute_path)
        pointer = "/" + "/".join(str(p) for p in path)
        message = f"invalid JSON schema at {pointer}: {error.message}"
        where = _json_key_location(source, [str(p) for p in path if isinstance(p, str)])
        found.append(Diagnostic("error", message, where, code="grammar"))
    return found


def _json_key_location(source: GrammarSource, keys: list[str]) -> Location:
    """Where the last of `keys` is written, found key after key in the text (approximate)."""
    offset = -1
    for key in keys:
        found = source.text.find(json.dumps(key), offset + 1)
        if found < 0:
            break
        offset = found
    if offset < 0:
        return source.location
    line = source.text.count("\n", 0, offset) + 1
    column = offset - (source.text.rfind("\n", 0, offset) + 1) + 1
    return _text_location(source, line, column)


def _diagnostic(source: GrammarSource, severity: Severity, message: str) -> Diagnostic:
    """A Diagnostic for one llguidance message, located in the file the problem is in."""
    lines = message.split("\n")
    first = lines[0] + "".join(" " + x for x in lines[1:] if x.startswith("error: "))
    where = source.location
    match = _POSITION.match(first)
    if source.kind == "regex":
        where = _regex_location(source, message)
    elif match and source.kind == "lark":  # a schema's position is in its `%json` wrapper
        line, column = int(match.group(1)), int(match.group(2))
        where = _text_location(source, line, _refine_column(source.text, message, line, column))
    if match:
        first = first[match.end() :].removeprefix("failed to compile JSON schema: ")
    hint = ""
    for fragment, construct, remedy in UNSUPPORTED:
        if re.search(fragment, message):
            first = f"llguidance does not support {construct}: {first}"
            hint = remedy + _lark_verdict(source)
            break
    else:
        verdict = _lark_verdict(source) if severity == "error" else ""
        if verdict:
            first = f"llguidance does not support a construct here: {first}"
            hint = "rewrite it in llguidance's Lark dialect" + verdict
    code = "grammar" if severity == "error" else "grammar-warning"
    return Diagnostic(severity, first, where, code=code, hint=hint)


def _lark_verdict(source: GrammarSource) -> str:
    """A note when lark itself accepts the grammar (valid Lark outside llguidance's dialect)."""
    if source.kind != "lark":
        return ""
    import lark

    rules = [name for name, _ in definitions(source.text) if name[:1].islower()]
    start = "start" if "start" in rules or not rules else rules[0]
    for parser in ("earley", "lalr"):
        try:
            lark.Lark(source.text, parser=parser, start=start)
        except Exception:  # lark raises many types for bad grammars; any means "rejects it"
            continue
        return " (lark accepts this grammar; the construct is outside llguidance's dialect)"
    return ""


def _refine_column(text: str, message: str, line: int, column: int) -> int:
    """A better column than llguidance's for templates (`name{`) and unknown names."""
    lines = text.split("\n")
    if not 0 < line <= len(lines):
        return column
    unknown = re.search(r'unknown name: "([^"]+)"', message)
    if unknown:
        pattern = r"(?<![\w\"/-])" + re.escape(unknown.group(1)) + r"(?![\w-])"
    elif "params not supported" in message:
        pattern = r"[\w-]+\{"
    else:
        return column
    found = re.search(pattern, lines[line - 1])
    return found.start() + 1 if found else column


def _text_location(source: GrammarSource, line: int, column: int) -> Location:
    """Map (line, column) of `source.text` into the real file, following included files."""
    lines = source.text.split("\n")
    for index in range(min(line, len(lines)) - 1, -1, -1):
        if lines[index].startswith(INCLUDE_MARK):
            return Location(lines[index][len(INCLUDE_MARK) :], line - index - 1, column)
    return source.location.shifted(line - 1, column + source.column_offset)


def _regex_location(source: GrammarSource, message: str) -> Location:
    """The column the regex parser's caret points at (regex errors carry no 'at L(C)')."""
    lines = message.split("\n")
    for index, text in enumerate(lines[:-1]):
        if text.endswith("regex parse error:") and index + 2 < len(lines):
            caret = lines[index + 2].find("^")
            if caret >= 4:
                return source.location.shifted(0, caret - 3 + source.column_offset)
    return source.location
