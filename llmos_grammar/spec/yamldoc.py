"""Read YAML files safely and keep the line and column of every node."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmos_grammar.errors import Location, SpecError, byte_location

MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_NODES = 100_000  # after alias expansion: stops "billion laughs" documents

Key = tuple[str | int, ...]


@dataclass
class Doc:
    """A parsed YAML document: plain data plus the location of each node."""

    file: str
    text: str
    data: Any
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


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file of at most 1 MiB, or raise SpecError with a location."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError("file not found", Location(file)) from None
    except IsADirectoryError:
        raise SpecError("is a folder, expected a YAML file", Location(file)) from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", Location(file)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(
            f"file is {len(raw)} bytes, more than the {MAX_FILE_BYTES} allowed",
            Location(file),
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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _mark(file, mark) if mark else Location(file)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"invalid YAML: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", Location(file)) from None
    doc = Doc(file=file, text=text, data=None)
    if node is None:
        doc.locations[()] = Location(file, 1, 1)
        return doc
    builder = _Builder(doc)
    doc.data = builder.build(node, ())
    return doc


def load(path: str | Path) -> Doc:
    return parse(read_text(path), str(path))


def _mark(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    """Turn composed nodes into Python data, recording where each came from."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.count = 0
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Key) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError(
                f"document expands to more than {MAX_NODES} nodes "
                "(anchors and aliases that multiply?); simplify it",
                _mark(self.doc.file, node.start_mark),
            )
        self.doc.locations.setdefault(path, _mark(self.doc.file, node.start_mark))
        self.doc.nodes.setdefault(path, node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Key) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in self._pairs(node):
            key = self._key(key_node)
            where = _mark(self.doc.file, key_node.start_mark)
            if key in result:
                raise SpecError(f"duplicate key {key!r}; each key may appear once", where)
            self.doc.key_locations[(*path, key)] = where
            result[key] = self.build(value_node, (*path, key))
        return result

    def _pairs(self, node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError(
                    "merge keys (<<) are not supported; write the keys out",
                    _mark(self.doc.file, key_node.start_mark),
                )
            yield key_node, value_node

    def _key(self, node: yaml.Node) -> str:
        # Keys stay text: YAML 1.1 would read `on:` or `yes:` as booleans.
        if not isinstance(node, yaml.ScalarNode):
            raise SpecError(
                "a mapping key must be a plain value", _mark(self.doc.file, node.start_mark)
            )
        return str(node.value)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise SpecError(
                f"invalid value: {exc.problem}", _mark(self.doc.file, node.start_mark)
            ) from None
