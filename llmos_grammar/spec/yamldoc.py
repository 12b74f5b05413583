"""Read YAML files safely and keep the line and column of every node."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from llmos_grammar.errors import Location, SpecError, byte_location
from llmos_grammar.spec.yamlbuild import MAX_DEPTH, MAX_NODES, Builder, Key
from llmos_grammar.spec.yamldata import YamlMap, YamlValue, mapping
from llmos_grammar.spec.yamlscalars import mark_location

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "Doc", "Key", "load", "parse", "read_text"]

MAX_FILE_BYTES = 1 << 20  # 1 MiB
# libyaml's parser when PyYAML has it (about 25 times faster); both stream events.
EVENT_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


@dataclass
class Doc:
    """A parsed YAML document: plain data plus the location of each node."""

    file: str
    text: str
    data: YamlValue
    locations: dict[Key, Location] = field(default_factory=dict)
    key_locations: dict[Key, Location] = field(default_factory=dict)
    nodes: dict[Key, yaml.Node] = field(default_factory=dict)

    def loc(self, path: Key, *, key: bool = False) -> Location:
        """Location of the node at `path` (of its key when `key`), or its nearest parent."""
        table = self.key_locations if key else self.locations
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.locations:
                return self.locations[probe]
            probe = probe[:-1]
        return self.locations.get((), Location(self.file, 1, 1))

    @property
    def top(self) -> YamlMap:
        """The document's top mapping (empty when the document is not a mapping)."""
        return mapping(self.data)

    @cached_property
    def lines(self) -> list[str]:
        """The text split into lines once (a file may have thousands of problems)."""
        return self.text.splitlines()


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file of at most 1 MiB, or raise SpecError with a location."""
    file = str(path)
    try:
        mode = Path(path).stat().st_mode
        if stat.S_ISDIR(mode):
            raise SpecError("is a folder, expected a YAML file", Location(file))
        if not stat.S_ISREG(mode):  # a pipe or a device may never end
            raise SpecError("not a regular file, expected a YAML file", Location(file))
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        raise SpecError("file not found", Location(file)) from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", Location(file)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(
            f"file is {max(size, len(raw))} bytes, more than the {MAX_FILE_BYTES} allowed "
            "(the limit is passed here); split it",
            byte_location(raw, MAX_FILE_BYTES, file),
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
            byte_location(raw, exc.start, file),
        ) from None


def parse(text: str, file: str) -> Doc:
    """Parse one YAML document, keeping node locations; raise SpecError on bad YAML."""
    _check_characters(text, file)
    try:
        builder = _build(text, file, EVENT_LOADER)
    except yaml.YAMLError as exc:
        if EVENT_LOADER is not yaml.SafeLoader:
            # PyYAML's own parser words errors better and the same with or without
            # libyaml; it also meets our depth limit before libyaml's own (1000 levels).
            _reparse(text, file)
        raise _invalid(exc, text, file) from None
    doc = Doc(file, text, builder.data, builder.locations, builder.key_locations, builder.nodes)
    doc.locations.setdefault((), Location(file, 1, 1))
    return doc


def load(path: str | Path) -> Doc:
    return parse(read_text(path), str(path))


def _build(text: str, file: str, loader: type) -> Builder:
    builder = Builder(file)
    for event in yaml.parse(text, Loader=loader):
        builder.feed(event)
    return builder


def _reparse(text: str, file: str) -> None:
    """Raise the pure-Python parser's error for `text`, if it finds one."""
    try:
        _build(text, file, yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _invalid(exc, text, file) from None


def _invalid(exc: yaml.YAMLError, text: str, file: str) -> SpecError:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return SpecError(f"invalid YAML: {exc}", Location(file, 1, 1))
    mark = exc.problem_mark or exc.context_mark
    where = mark_location(file, mark) if mark else Location(file, 1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    return SpecError(f"invalid YAML: {problem}{_hint(problem, text, mark)}", where)


def _check_characters(text: str, file: str) -> None:
    """YAML forbids control characters (NUL included) anywhere, even in comments."""
    found = NON_PRINTABLE.search(text)
    if found:
        offset = found.start()
        line = len(_LINE_BREAK.findall(text, 0, offset))
        last = max(text.rfind(c, 0, offset) for c in "\r\n\x85\u2028\u2029")
        raise SpecError(
            f"invalid YAML: control character U+{ord(found.group()):04X} is not allowed; "
            "remove it (tabs, line breaks and printable text are allowed)",
            Location(file, line + 1, offset - last),
        )


def _hint(problem: str, text: str, mark: yaml.Mark | None) -> str:
    """What to do about a parser error, when its wording or the character at it tells."""
    if problem == "could not find expected ':'":
        return "; a key needs ':' after it on the same line, within 1024 characters"
    if problem.startswith("mapping values are not allowed"):
        return "; quote a value that holds ': ', and keep keys under 1024 characters"
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        return "; indent with spaces, YAML does not allow tabs there"
    return ""
