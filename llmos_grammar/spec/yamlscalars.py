"""Resolve and build YAML scalars as text, numbers, booleans or null; refuse other tags."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol, cast

import yaml
from yaml.constructor import SafeConstructor

from llmos_grammar.errors import Location, SpecError
from llmos_grammar.spec.yamldata import Scalar

MAX_NUMBER_CHARS = 100  # longer numbers are refused: PyYAML converts them in quadratic time

_CORE = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_CORE + name for name in ("str", "int", "float", "bool", "null"))
_IMPLICIT = frozenset({INT, FLOAT, BOOL, NULL})  # dates, `<<` and `=` stay text
_SURROGATE = re.compile("[\ud800-\udfff]")
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = SafeConstructor()
_BUILD: dict[str, Callable[[yaml.ScalarNode], Scalar]] = {
    STR: _CONSTRUCTOR.construct_yaml_str,
    INT: _CONSTRUCTOR.construct_yaml_int,
    FLOAT: _CONSTRUCTOR.construct_yaml_float,
    BOOL: _CONSTRUCTOR.construct_yaml_bool,
    NULL: _CONSTRUCTOR.construct_yaml_null,
}


class Mark(Protocol):
    """A 0-based position from PyYAML (its C and Python parsers each have a Mark class)."""

    line: int
    column: int
    index: int


def start_of(event: yaml.Event) -> Mark:
    """Where an event starts: the parser gives every event a mark."""
    assert event.start_mark is not None
    return cast(Mark, event.start_mark)


def mark_location(file: str, mark: Mark) -> Location:
    """The 1-based location of a 0-based PyYAML mark."""
    return Location(file, mark.line + 1, mark.column + 1)


def short_tag(tag: str | None) -> str:
    """`!!binary` for the YAML core tags, the tag as written otherwise."""
    tag = tag or "!"
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def scalar_tag(event: yaml.ScalarEvent, file: str) -> str:
    """The tag of a scalar: its own if it has one we build, else text or a plain number."""
    if event.tag is None:
        tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
        return tag if tag in _IMPLICIT else STR
    if event.tag == "!":  # the non-specific tag: text
        return STR
    if event.tag in _BUILD:
        return str(event.tag)
    raise SpecError(
        f"the tag {short_tag(event.tag)} is not supported: values are text, numbers, "
        "booleans or null; remove the tag",
        mark_location(file, start_of(event)),
    )


def key_text(node: yaml.ScalarNode, file: str, mark: Mark) -> str:
    """A key as text, as written: YAML 1.1 would read `on:` or `yes:` as booleans."""
    if not node.style and node.value == "<<":  # plain: '<<' and "<<" are text
        raise SpecError(
            "merge keys (<<) are not supported; write the keys out", mark_location(file, mark)
        )
    _check_text(node.value, file, mark)
    return str(node.value)


def construct(node: yaml.ScalarNode, file: str) -> Scalar:
    """The value of a scalar whose tag came from scalar_tag()."""
    if node.tag == STR:
        _check_text(node.value, file, node.start_mark)
        return node.value
    if node.tag in (INT, FLOAT) and len(node.value) > MAX_NUMBER_CHARS:
        raise SpecError(
            f"a number of {len(node.value)} characters (at most {MAX_NUMBER_CHARS}); "
            "quote it to keep it as text",
            mark_location(file, node.start_mark),
        )
    try:
        return _BUILD[node.tag](node)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError):
        raise SpecError(
            f"{_shorten(node.value)!r} is not a valid {short_tag(node.tag)} value; "
            "fix it or remove the tag",
            mark_location(file, node.start_mark),
        ) from None


def _check_text(text: str, file: str, mark: Mark) -> None:
    found = _SURROGATE.search(text)
    if found:
        raise SpecError(
            f"a \\u{ord(found.group()):04x} escape is half of a UTF-16 pair, not a character; "
            "write the character itself",
            mark_location(file, mark),
        )


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
