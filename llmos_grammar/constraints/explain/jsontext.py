"""JSON-schema states: where in the JSON value a place is, and what the schema's own
validator says of a text that is JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class SchemaError:
    """One violation the JSON Schema validator finds in a JSON text."""

    path: str  # `$.items[2].name`
    message: str


@dataclass
class _Frame:
    array: bool
    index: int = 0
    key: str | None = None
    wants_key: bool = True


def json_path(prefix: str) -> str:
    """The place in the JSON value that `prefix` (the start of a JSON text) ends in, as a
    path: `$`, `$.age`, `$.items[2]`; `(key)` when an object's key comes next or is being
    written."""
    stack: list[_Frame] = []
    string: list[str] | None = None
    escaped = False
    last = ""
    for ch in prefix:
        if string is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                last, string = "".join(string), None
            else:
                string.append(ch)
            continue
        _step(stack, ch, last)
        if ch == '"':
            string = []
    frame = stack[-1] if stack else None
    path = "$" + "".join(_part(f) for f in stack if not f.wants_key or f.array)
    in_key = frame is not None and not frame.array and frame.wants_key
    return path + " (key)" if in_key else path


def _step(stack: list[_Frame], ch: str, last: str) -> None:
    if ch in "{[":
        stack.append(_Frame(array=ch == "["))
        if ch == "[":
            stack[-1].wants_key = False
    elif ch in "}]" and stack:
        stack.pop()
    elif ch == ":" and stack and not stack[-1].array:
        stack[-1].key, stack[-1].wants_key = last, False
    elif ch == "," and stack:
        frame = stack[-1]
        if frame.array:
            frame.index += 1
        else:
            frame.key, frame.wants_key = None, True


def _part(frame: _Frame) -> str:
    if frame.array:
        return f"[{frame.index}]"
    return pointer_part(frame.key or "")


def pointer_part(key: str | int) -> str:
    """One step of a path: `[2]`, `.name`, or `["odd key"]`."""
    if isinstance(key, int):
        return f"[{key}]"
    return f".{key}" if _NAME.match(key) else f"[{json.dumps(key)}]"


def schema_errors(schema_text: str, text: str) -> tuple[SchemaError, ...]:
    """What the JSON Schema validator finds wrong with `text`; () when `text` is not JSON
    (the byte walk says where it breaks) or the schema is not JSON."""
    try:
        schema = json.loads(schema_text)
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return ()
    import jsonschema

    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    errors = sorted(validator(schema).iter_errors(value), key=lambda e: list(map(str, e.path)))
    return tuple(SchemaError(_path(e.absolute_path), e.message) for e in errors)


def _path(parts: Sequence[str | int]) -> str:
    return "$" + "".join(pointer_part(p) for p in parts)
