"""Build plain data from YAML parser events with an explicit stack, never recursing.

PyYAML's composer and constructor recurse once per nesting level, so a deep
document ends in RecursionError; its scanner and parser do not. This builder
reads the parser's events, so every limit (depth, values and text after aliases,
key length, tags) is checked before any deep structure exists. The data it
builds holds only text, numbers, booleans, null, lists and mappings with text
keys: what JSON Schema and the checker expect.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import cast

import yaml

from llmos_grammar.errors import Location, SpecError
from llmos_grammar.spec.yamldata import YamlValue
from llmos_grammar.spec.yamlscalars import (
    Mark,
    construct,
    key_text,
    mark_location,
    scalar_tag,
    short_tag,
    start_of,
)

MAX_DEPTH = 64  # lists and mappings inside each other; real specs use fewer than 10
MAX_NODES = 10_000  # values after alias expansion (specs hold under 100): bounds all later work
MAX_TEXT = 2 << 20  # characters of text after alias expansion (a file holds 1 MiB at most)
MAX_KEY_CHARS = 1024  # the longest key YAML itself allows without `? `

Key = tuple[str | int, ...]
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass
class _Frame:
    """A list or mapping being filled."""

    node: yaml.Node
    path: Key
    data: dict[str, YamlValue] | list[YamlValue]
    anchor: str | None
    first_count: int
    first_chars: int
    height: int = 1  # levels of lists and mappings, this one included
    key: str | None = None  # a mapping's key that waits for its value


@dataclass(frozen=True)
class _Anchor:
    node: yaml.Node
    data: dict[str, YamlValue] | list[YamlValue] | None  # None: a scalar, built at each use
    height: int
    size: int  # values
    chars: int  # characters of text


@dataclass
class Builder:
    """Feed it the events of one YAML stream; it fills `data` and the location tables."""

    file: str
    data: YamlValue = None
    locations: dict[Key, Location] = field(default_factory=dict)
    key_locations: dict[Key, Location] = field(default_factory=dict)
    nodes: dict[Key, yaml.Node] = field(default_factory=dict)
    stack: list[_Frame] = field(default_factory=list)
    anchors: dict[str, _Anchor] = field(default_factory=dict)
    count: int = 0
    chars: int = 0
    aliased: bool = False
    documents: int = 0

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            self._scalar(event)
        elif isinstance(event, yaml.CollectionStartEvent):
            self._start(event)
        elif isinstance(event, yaml.CollectionEndEvent):
            self._end(event)
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event)
        elif isinstance(event, yaml.DocumentStartEvent):
            self._document(event)

    def error(self, message: str, mark: Mark) -> SpecError:
        return SpecError(message, mark_location(self.file, mark))

    # ---- events -------------------------------------------------------------

    def _document(self, event: yaml.DocumentStartEvent) -> None:
        self.documents += 1
        if self.documents > 1:
            raise self.error(
                "a second YAML document (`---`) in the file; keep one document per file",
                start_of(event),
            )

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        tag, mark = scalar_tag(event, self.file), start_of(event)
        style = event.style or None  # libyaml says '' for plain
        node = yaml.ScalarNode(tag, event.value, _mark(event), None, style)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(node, None, 0, 1, len(event.value))
        if self._wants_key():
            self._key(node, mark)
        else:
            self._value(construct(node, self.file), node, 0, 1, len(event.value), mark)

    def _alias(self, event: yaml.AliasEvent) -> None:
        name, mark = str(event.anchor), start_of(event)
        anchor = self.anchors.get(name)
        if anchor is None:
            if any(frame.anchor == name for frame in self.stack):
                raise self.error(
                    f"alias *{name} is used inside &{name} itself, a structure that contains "
                    "itself; write the data out",
                    mark,
                )
            raise self.error(f"alias *{name} has no anchor &{name} before it", mark)
        if self._wants_key():
            self._key(anchor.node, mark)
            return
        self.aliased = True
        data: YamlValue
        if isinstance(anchor.node, yaml.ScalarNode):
            data = construct(anchor.node, self.file)
        else:
            data = copy.deepcopy(anchor.data)  # each use is its own copy, as when written out
        self._value(data, anchor.node, anchor.height, anchor.size, anchor.chars, mark)

    def _start(self, event: yaml.CollectionStartEvent) -> None:
        is_map, mark = isinstance(event, yaml.MappingStartEvent), start_of(event)
        if self._wants_key():
            raise self.error("a mapping key must be plain text, not a list or mapping", mark)
        tag = MAP_TAG if is_map else SEQ_TAG
        if event.tag not in (None, "!", tag):
            kind = "a mapping" if is_map else "a list"
            raise self.error(
                f"the tag {short_tag(event.tag)} is not supported on {kind}; remove it", mark
            )
        self._check_depth(1, mark)
        node = (yaml.MappingNode if is_map else yaml.SequenceNode)(tag, [], _mark(event), None)
        path = self._child_path()
        self._count(1, 0, mark)
        self._record(path, node, mark)
        data: dict[str, YamlValue] | list[YamlValue] = {} if is_map else []
        self.stack.append(_Frame(node, path, data, event.anchor, self.count, self.chars))

    def _end(self, event: yaml.CollectionEndEvent) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            size = self.count - frame.first_count + 1
            chars = self.chars - frame.first_chars
            self.anchors[frame.anchor] = _Anchor(frame.node, frame.data, frame.height, size, chars)
        self._attach(frame.data, frame.height)

    # ---- helpers ------------------------------------------------------------

    def _wants_key(self) -> bool:
        top = self.stack[-1] if self.stack else None
        return top is not None and isinstance(top.data, dict) and top.key is None

    def _child_path(self) -> Key:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.data, dict):
            assert top.key is not None
            return (*top.path, top.key)
        return (*top.path, len(top.data))

    def _key(self, node: yaml.Node, mark: Mark) -> None:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error("a mapping key must be plain text, not a list or mapping", mark)
        key = key_text(node, self.file, mark)
        if len(key) > MAX_KEY_CHARS:
            raise self.error(
                f"a key of {len(key)} characters; keys may have at most {MAX_KEY_CHARS}", mark
            )
        top = self.stack[-1]
        if key in top.data:
            raise self.error(f"duplicate key {key!r}; each key may appear once", mark)
        self.key_locations[(*top.path, key)] = mark_location(self.file, mark)
        top.key = key

    def _value(
        self, data: YamlValue, node: yaml.Node, height: int, size: int, chars: int, mark: Mark
    ) -> None:
        self._check_depth(height, mark)
        self._count(size, chars, mark)
        self._record(self._child_path(), node, mark)
        self._attach(data, height)

    def _record(self, path: Key, node: yaml.Node, mark: Mark) -> None:
        self.locations[path] = mark_location(self.file, mark)
        self.nodes[path] = node

    def _attach(self, data: YamlValue, height: int) -> None:
        if not self.stack:
            self.data = data
            return
        top = self.stack[-1]
        top.height = max(top.height, height + 1)
        if isinstance(top.data, dict):
            assert top.key is not None
            top.data[top.key] = data
            top.key = None
        else:
            top.data.append(data)

    def _check_depth(self, height: int, mark: Mark) -> None:
        if len(self.stack) + height > MAX_DEPTH:
            raise self.error(
                f"lists and mappings nested more than {MAX_DEPTH} levels deep; "
                "flatten the document",
                mark,
            )

    def _count(self, size: int, chars: int, mark: Mark) -> None:
        self.count += size
        self.chars += chars
        cause = " (anchors and aliases that multiply?)" if self.aliased else ""
        if self.count > MAX_NODES:
            raise self.error(
                f"document expands to more than {MAX_NODES} values{cause}; simplify it", mark
            )
        if self.chars > MAX_TEXT:  # only aliases can pass it: the file holds less
            raise self.error(
                f"document expands to more than {MAX_TEXT} characters of text{cause}; simplify it",
                mark,
            )


def _mark(event: yaml.Event) -> yaml.Mark:
    """The event's start mark for a node (nodes are typed with the Python parser's Mark)."""
    return cast(yaml.Mark, start_of(event))
