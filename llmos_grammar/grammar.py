"""The grammar stage: load, validate and test Lark/regex/JSON-schema sources; close conflicts."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmos_grammar.errors import Diagnostic, GrammarError, Location
from llmos_grammar.ir import GrammarKind, GrammarSource

MAX_GRAMMAR_BYTES = 1 << 20
SUFFIX_KINDS: dict[str, GrammarKind] = {
    ".lark": "lark",
    ".json": "json_schema",
    ".regex": "regex",
    ".re": "regex",
}
# Marks the start of a file that load_source appended; validate maps lines below it into that file.
INCLUDE_MARK = "// @llmos-included "
_POSITION = re.compile(r"^(?:at )?(\d+)\((\d+)\): ")
# (fragment of an llguidance message, construct it concerns, what to do)
UNSUPPORTED: tuple[tuple[str, str, str], ...] = (
    ("params not supported", "rule template (`name{param}: ...`)", "write one rule per use"),
    ("priority not supported", "priority (`NAME.2: ...`)", "drop the priority"),
    ("declare statement", "`%declare`", "define the terminal"),
    ("override statement", "`%override`", "edit the rule itself"),
    ("extend statement", "`%extend`", "add the alternatives to the rule"),
    ("look-around", "regex look-around", "use `&` and `~` on terminals instead"),
    ("Unknown common regex", "`%import` of a file", "load the grammar from a file"),
)


def grammars_dir() -> Path:
    """The folder of grammars shipped with llmos-grammar (python.lark, sql_select.lark, ...)."""
    return Path(__file__).resolve().parent.parent / "grammars"


# ------------------------------------------------------------------------------- validate


def validate(source: GrammarSource) -> list[Diagnostic]:
    """Every problem llguidance (and, for Lark, lark) finds in `source`; never raises."""
    if source.kind == "json_schema":
        problems = _json_problems(source)
        if problems:
            return problems
    try:
        grammar = _backend_grammar(source)
    except ValueError as exc:
        return [Diagnostic("error", str(exc), source.location, code="grammar")]
    import llguidance as llg

    is_error, messages = llg.LLMatcher.validate_grammar_with_warnings(grammar)
    severity = "error" if is_error else "warning"
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
        pointer = "/" + "/".join(str(p) for p in error.absolute_path)
        message = f"invalid JSON schema at {pointer}: {error.message}"
        found.append(Diagnostic("error", message, source.location, code="grammar"))
    return found


def _diagnostic(source: GrammarSource, severity: str, message: str) -> Diagnostic:
    """A Diagnostic for one llguidance message, located in the file the problem is in."""
    lines = message.split("\n")
    first = lines[0] + "".join(" " + x for x in lines[1:] if x.startswith("error: "))
    where = source.location
    match = _POSITION.match(first)
    if source.kind == "regex":
        where = _regex_location(source, message)
    elif match:
        line, column = int(match.group(1)), int(match.group(2))
        where = _text_location(source, line, _refine_column(source.text, message, line, column))
    if match:
        first = first[match.end() :]
    hint = ""
    for fragment, construct, remedy in UNSUPPORTED:
        if fragment in message:
            first = f"llguidance does not support {construct}: {first}"
            hint = remedy + _lark_verdict(source)
            break
    code = "grammar" if severity == "error" else "grammar-warning"
    return Diagnostic(severity, first, where, code=code, hint=hint)  # type: ignore[arg-type]


def _lark_verdict(source: GrammarSource) -> str:
    """A note when lark itself accepts the grammar (valid Lark outside llguidance's dialect)."""
    if source.kind != "lark":
        return ""
    import lark

    rules = [name for name, _ in _definitions(source.text) if name[:1].islower()]
    start = "start" if "start" in rules or not rules else rules[0]
    try:
        lark.Lark(source.text, parser="earley", start=start)
    except Exception:  # lark raises many types for bad grammars; any means "lark rejects it"
        return ""
    return " (lark accepts this grammar; the construct is outside llguidance's dialect)"


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


def _backend_grammar(source: GrammarSource) -> str:
    """The llguidance grammar for `source` (raises ValueError on JSON that is not an object)."""
    import llguidance as llg

    if source.kind == "lark":
        return str(llg.LLMatcher.grammar_from_lark(source.text))
    if source.kind == "regex":
        return str(llg.LLMatcher.grammar_from_regex(source.text))
    if source.kind == "json_schema":
        return str(llg.LLMatcher.grammar_from_json_schema(source.text))
    raise ValueError(f"unknown grammar kind {source.kind!r}")


# ------------------------------------------------------------------------------- load_source
_IMPORT = re.compile(r"^%import\s+(\.*[\w.]+)(?:\s*\(([^)]*)\)|\s*->\s*\w+)?\s*$")
_INCLUDE = re.compile(r'^%include\s+"([^"\n]+)"\s*$')


def load_source(
    path: str,
    kind: GrammarKind | None = None,
    *,
    base_dirs: Sequence[str],
    location: Location | None = None,
) -> GrammarSource:
    """Read the grammar file `path`, looked up in the first of `base_dirs` that holds it.

    The kind comes from the suffix (.lark, .json, .regex/.re) unless given. A path that leaves
    `base_dirs` (after resolving symlinks), a missing file, a file over 1 MiB or not UTF-8
    raises GrammarError at `location` (where the path was written; the file itself when None).
    Lark `%import .module (names)` and `%include "file.lark"` of files are resolved in the same
    folders and appended to the text after an INCLUDE_MARK line (their `start` rule dropped), so
    that diagnostics map back into the included file; an include cycle raises GrammarError.
    """
    where = location or Location(path)
    roots = [Path(d).resolve() for d in base_dirs]
    file = _find(path, roots, where)
    grammar_kind = kind or SUFFIX_KINDS.get(file.suffix.lower())
    if grammar_kind is None:
        known = ", ".join(SUFFIX_KINDS)
        raise GrammarError(f"cannot tell the grammar kind of {path!r} (use {known})", where)
    text = _read(file, where)
    if grammar_kind == "lark":
        text = _inline_includes(text, file, roots, [file], set())
    elif grammar_kind == "regex":
        text = text.removesuffix("\n")
    return GrammarSource(grammar_kind, text, Location(str(file), 1, 1), origin=str(file))


def _find(path: str, roots: list[Path], where: Location) -> Path:
    """The resolved file `path` names inside one of `roots`."""
    if not roots:
        raise GrammarError(f"no folder to look for grammar {path!r} in", where)
    candidates = [Path(path)] if Path(path).is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        resolved = candidate.resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            folders = ", ".join(str(r) for r in roots)
            raise GrammarError(
                f"grammar path {path!r} leads outside the allowed folders ({folders})", where
            )
        if resolved.is_file():
            return resolved
    raise GrammarError(f"grammar file {path!r} not found in {', '.join(map(str, roots))}", where)


def _read(file: Path, where: Location) -> str:
    """The UTF-8 text of `file` (at most 1 MiB)."""
    size = file.stat().st_size
    if size > MAX_GRAMMAR_BYTES:
        raise GrammarError(f"grammar file {file} is {size} bytes; the limit is 1 MiB", where)
    data = file.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise GrammarError(
            f"grammar file is not UTF-8 (byte 0x{data[exc.start]:02x})",
            Location(str(file), line, column),
        ) from None


def _inline_includes(
    text: str, file: Path, roots: list[Path], stack: list[Path], done: set[Path]
) -> str:
    """`text` with its file imports/includes commented out and their texts appended."""
    lines = text.split("\n")
    appended: list[str] = []
    for number, line in enumerate(lines, start=1):
        target = _included_path(line.strip())
        if target is None:
            continue
        where = Location(str(file), number, 1)
        included = _find_relative(target, file, roots, where)
        if included in stack:
            chain = " -> ".join(p.name for p in [*stack, included])
            raise GrammarError(f"grammar includes itself: {chain}", where)
        lines[number - 1] = "// " + line + "  (appended below)"
        if included in done:
            continue
        done.add(included)
        body = _inline_includes(_read(included, where), included, roots, [*stack, included], done)
        unused = rf"\1llmos_unused_start_{len(done)}\2"
        appended += [INCLUDE_MARK + str(included), _START_DEF.sub(unused, body)]
    return "\n".join(lines + appended)


def _included_path(line: str) -> str | None:
    """The relative file path an `%include`/file `%import` line names, or None."""
    include = _INCLUDE.match(line)
    if include:
        return include.group(1)
    imported = _IMPORT.match(line)
    if imported is None or imported.group(1).startswith("common"):
        return None
    module = imported.group(1)
    dots = len(module) - len(module.lstrip("."))
    parts = module.lstrip(".").split(".")
    if imported.group(2) is None and len(parts) > 1:
        parts = parts[:-1]  # `%import .mod.NAME`: the last part is the imported name
    return "../" * max(dots - 1, 0) + "/".join(parts) + ".lark"


def _find_relative(target: str, file: Path, roots: list[Path], where: Location) -> Path:
    """An included file: next to the including file first, then in `roots`."""
    return _find(target, list(dict.fromkeys([file.parent, *roots])), where)


# ------------------------------------------------------------------------------- accepts


@functools.cache
def _byte_tokenizer() -> Any:
    """llguidance's byte-level tokenizer: token i < 256 is byte i; no model needed."""
    import llguidance as llg

    return llg.LLTokenizer("byte")


@functools.lru_cache(maxsize=64)
def _template_matcher(kind: str, text: str) -> Any:
    """A fresh matcher for (kind, text), compiled once; callers use deep copies."""
    import llguidance as llg

    source = GrammarSource(kind=kind, text=text, location=Location("<grammar>"))  # type: ignore[arg-type]
    try:
        grammar = _backend_grammar(source)
    except ValueError as exc:
        raise GrammarError(str(exc)) from None
    matcher = llg.LLMatcher(_byte_tokenizer(), grammar, log_level=0)
    if matcher.is_error():
        raise GrammarError(f"grammar does not compile: {matcher.get_error()}")
    return matcher


def _matcher(source: GrammarSource) -> Any:
    try:
        return _template_matcher(source.kind, source.text).deep_copy()
    except GrammarError as exc:
        raise GrammarError(exc.message, source.location) from None


def _consume(matcher: Any, data: bytes) -> bool:
    """Feed `data` byte by byte; True when every byte was allowed."""
    return bool(matcher.try_consume_tokens(list(data)) == len(data)) and not matcher.is_error()


def accepts(source: GrammarSource, text: str) -> bool:
    """Whether the whole of `text` is a string of the grammar's language (raises GrammarError if
    the grammar does not compile)."""
    matcher = _matcher(source)
    return _consume(matcher, text.encode("utf-8")) and bool(matcher.is_accepting())


# ------------------------------------------------------------------------------- close_conflict
# Method. (1) Language probe: walk the grammar's states breadth-first from the start and from
# prefixes made of the grammar's own string literals, branching on a few representative allowed
# bytes (quotes, brackets, comment signs, blanks, a letter, a digit ...), and at every state ask
# the matcher whether it can consume the bytes of `close`; when it can, complete the string to an
# accepted one (greedy, preferring closing characters). A completed string is a proof: error.
# (2) Terminal scan (Lark): intersect each terminal with "contains close" in llguidance and look
# for a lexeme; a terminal that can hold `close` while (1) found no witness is a warning, and its
# lexeme is tried after every probed state so (1) gets the chance to prove it. A regex or JSON
# schema is probed by (1) alone. None means neither step found a way to produce `close`.

PROBE_BYTES = b"\"'`#([{</ \n=:,-$\\aA0.;|&"
COMPLETION_BYTES = b"\"')]}`;:0\n,a= "
MAX_COMPLETION_STATES = 400
MAX_PROBE_STATES = 400
MAX_TERMINAL_STATES = 40
MAX_PROBE_DEPTH = 8
MAX_COMPLETION = 24
_LITERAL_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"i?')
_REGEX_TOKEN = re.compile(r"/(?![/*])(?:[^/\\\n]|\\.)+/[imsux]*")
_START_DEF = re.compile(r"^(\??)start(\s*(?:\[[^\]\n]*\])?\s*:)", re.MULTILINE)


def close_conflict(source: GrammarSource, close: str) -> Diagnostic | None:
    """An error when a string of the grammar's language contains `close` (with that string in the
    message), a warning when only a part of the grammar is seen to admit it, None when clear."""
    if not close:
        return None
    try:
        start = _matcher(source)
    except GrammarError:
        return None  # validate() reports grammars that do not compile
    seeds = _seed_prefixes(source)
    hints = b"".join(seed[:1] for seed in seeds)
    lexemes = _terminal_witnesses(source, close, hints) if source.kind == "lark" else {}
    needles = [close.encode("utf-8")] + [w for w in lexemes.values() if close.encode() in w]
    found = _probe(start, seeds, needles, hints, MAX_PROBE_STATES)
    if found is not None:
        text = found.decode("utf-8", "replace")
        return Diagnostic(
            "error",
            f"the grammar can produce the close delimiter {close!r}, e.g. in {text!r}",
            source.location,
            code="close-conflict",
            hint=f"exclude {close!r} from the grammar's strings/comments, or pick another close",
        )
    if lexemes:
        name, lexeme = next(iter(lexemes.items()))
        return Diagnostic(
            "warning",
            f"terminal {name} can match text containing {close!r} (e.g. "
            f"{lexeme.decode('utf-8', 'replace')!r}); no full string of the grammar was found",
            source.location,
            code="close-conflict",
            hint=f"exclude {close!r} from {name} (e.g. `{name}: ... & ~/(?s:.*)<close>(?s:.*)/`)",
        )
    return None


def _seed_prefixes(source: GrammarSource) -> list[bytes]:
    """Prefixes worth probing from: empty, common openings, and the grammar's own literals."""
    seeds = [b"", b'x = "', b"x = '", b"# ", b"-- ", b'{"', b'["', b"echo "]
    if source.kind == "lark":
        for literal in _LITERAL_TOKEN.findall(source.text):
            seeds.append(_unquote(literal).encode("utf-8"))
    return list(dict.fromkeys(seeds))


def _probe(
    start: Any, seeds: list[bytes], needles: list[bytes], hints: bytes, limit: int
) -> bytes | None:
    """Breadth-first walk over grammar states; a complete string holding a needle, or None."""
    queue: list[tuple[bytes, Any, int]] = []
    for seed in seeds:
        matcher = start.deep_copy()
        if _consume(matcher, seed):
            queue.append((seed, matcher, 0))
    seen: set[bytes] = set()
    while queue and len(seen) < limit:
        prefix, matcher, depth = queue.pop(0)
        if prefix in seen:
            continue
        seen.add(prefix)
        for needle in needles:
            probe = matcher.deep_copy()
            if _consume(probe, needle):
                tail = _complete(probe, hints)
                if tail is not None:
                    return prefix + needle + tail
        if depth < MAX_PROBE_DEPTH:
            for byte in _allowed(matcher, PROBE_BYTES):
                step = matcher.deep_copy()
                if _consume(step, bytes([byte])):
                    queue.append((prefix + bytes([byte]), step, depth + 1))
    return None


def _allowed(matcher: Any, wanted: bytes) -> list[int]:
    """The bytes of `wanted` the matcher allows next (byte tokenizer: token id = byte)."""
    mask = matcher.compute_bitmask()
    return [b for b in wanted if mask[b // 8] >> (b % 8) & 1]


def _complete(matcher: Any, hints: bytes = b"") -> bytes | None:
    """Bytes that bring `matcher` to an accepting state, or None: iterative deepening, trying
    closing characters, then `hints` (first bytes of the grammar's literals), then a few others."""
    alphabet = bytes(dict.fromkeys(COMPLETION_BYTES + hints))
    budget = [0]

    def walk(state: Any, depth: int) -> bytes | None:
        if state.is_accepting():
            return b""
        if depth <= 0:
            return None
        allowed = _allowed(state, bytes(range(256)))
        preferred = [b for b in alphabet if b in allowed]
        others = [b for b in allowed if 32 < b < 127 and b not in preferred][:3]
        for byte in preferred + others:
            budget[0] -= 1
            if budget[0] < 0:
                return None
            step = state.deep_copy()
            if _consume(step, bytes([byte])):
                rest = walk(step, depth - 1)
                if rest is not None:
                    return bytes([byte]) + rest
        return None

    for depth in (2, 4, 8, MAX_COMPLETION):
        budget[0] = MAX_COMPLETION_STATES
        found = walk(matcher, depth)
        if found is not None:
            return found
    return None


def _terminal_witnesses(source: GrammarSource, close: str, hints: bytes) -> dict[str, bytes]:
    """For each lexeme the Lark rules use (named terminal, inline regex or literal, %ignore) that
    can match text containing `close`, one such text."""
    text = _START_DEF.sub(r"\1llmos_original_start\2", source.text)
    contains = "/(?s:.*)" + re.escape(close).replace("/", "\\/") + "(?s:.*)/"
    found: dict[str, bytes] = {}
    for kind, item in _rule_lexemes(source.text):
        if item in found:
            continue
        if kind == "literal":
            value = _unquote(item)
            if close in value:
                found[item] = value.encode("utf-8")
            continue
        probe = f"{text}\nstart: LLMOS_PROBE\nLLMOS_PROBE: ({item}) & {contains}\n"
        try:
            matcher = _template_matcher("lark", probe).deep_copy()
        except GrammarError:
            continue
        lexeme = _probe(matcher, [b""], [close.encode("utf-8")], hints, MAX_TERMINAL_STATES)
        if lexeme is not None:
            found[item] = lexeme
    return found


def _rule_lexemes(text: str) -> list[tuple[str, str]]:
    """(kind, text) of every lexeme a rule body or %ignore uses: "name", "regex" or "literal".
    Terminals used only inside other terminals are parts of lexemes, not lexemes."""
    found: list[tuple[str, str]] = []
    for name, body in _definitions(text):
        if name[:1].isupper():
            continue
        found += [("literal", m) for m in _LITERAL_TOKEN.findall(body)]
        bare = _LITERAL_TOKEN.sub(" ", body)
        found += [("regex", m) for m in _REGEX_TOKEN.findall(bare)]
        bare = _REGEX_TOKEN.sub(" ", bare)
        found += [("name", m) for m in re.findall(r"\b[A-Z_][A-Z0-9_]*\b", bare)]
    return list(dict.fromkeys(found))


def _definitions(text: str) -> list[tuple[str, str]]:
    """(name, body) of each rule/terminal definition; `%ignore X` counts as a rule using X."""
    found: list[tuple[str, str]] = []
    for line in text.split("\n"):
        code = "" if line.lstrip().startswith(("//", "#")) else line
        head = re.match(r"^\??([A-Za-z_][\w-]*)(?:\.\d+)?(?:\[[^\]\n]*\])?\s*:(?!=)", code)
        if head:
            found.append((head.group(1), code[head.end() :]))
        elif code.startswith("%ignore"):
            found.append(("ignore", code[len("%ignore") :]))
        elif code[:1] in (" ", "\t", "|") and found:
            found[-1] = (found[-1][0], found[-1][1] + " " + code)
    return found


def _unquote(literal: str) -> str:
    """The value of a Lark string literal (JSON escapes; falls back to the raw text)."""
    try:
        return str(json.loads(literal.removesuffix("i")))
    except ValueError:
        return literal.strip('"')
