"""Read grammar files from allowed folders; inline Lark file imports and includes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from llmos_grammar.errors import GrammarError, Location, byte_location
from llmos_grammar.grammar.larktext import START_DEF
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
        raise GrammarError(
            f"grammar file is not UTF-8 (byte 0x{data[exc.start]:02x})",
            byte_location(data, exc.start, str(file)),
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
        appended += [INCLUDE_MARK + str(included), START_DEF.sub(unused, body)]
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
