"""The data a YAML document holds, and typed reads of it once its schema has checked it.

`yamlbuild` makes only text, numbers, booleans, null, lists and mappings with
text keys. The schema (schemas.py) checks each key's type before the IR is
built, so these reads narrow without a second check: a value of the wrong
type reads as the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar, Union

Scalar = str | int | float | bool | None
YamlValue = Union[Scalar, list["YamlValue"], dict[str, "YamlValue"]]  # noqa: UP007 (recursive)
YamlMap = dict[str, YamlValue]

T = TypeVar("T")
S = TypeVar("S", bound=str)


def mapping(value: object) -> YamlMap:
    """`value` if it is a mapping, else an empty one."""
    return value if isinstance(value, dict) else {}


def items(value: object) -> list[YamlValue]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def maybe_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def maybe_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def texts(value: object) -> tuple[str, ...]:
    """A list of text as a tuple (entries that are not text left out)."""
    return tuple(v for v in items(value) if isinstance(v, str))


def choice(value: object, options: tuple[S, ...], default: S) -> S:
    """`value` as one of `options` (a Literal's values), else `default`."""
    return next((option for option in options if option == value), default)


def from_data(cls: Callable[..., T], data: Mapping[str, object], **fixed: object) -> T:
    """`cls(**data, **fixed)` for a frozen IR dataclass: the schema gave each key the type of
    the field it fills (mypy cannot see that, so the keywords are not checked here)."""
    return cls(**data, **fixed)
