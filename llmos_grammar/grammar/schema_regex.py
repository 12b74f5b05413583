"""A JSON schema as the regex outlines-core indexes (enforcing what llguidance enforces), or
the reason it cannot be one."""

from __future__ import annotations

import json
from collections.abc import Iterator

from llmos_grammar.errors import BackendError
from llmos_grammar.grammar import jsonspace

# JSON strings and numbers as llguidance enforces them (so that both backends enforce the same
# language). Numbers: outlines-core needs a sign in an exponent, llguidance not. Strings:
# outlines-core allows the escape `\/`, no `\uXXXX`, and forbids U+0080..U+009F;
# llguidance forbids `\/`, allows `\u` for the control characters only (U+0000..U+001F,
# U+007F), and allows U+0080..U+009F
JSON_ALIGN = (
    (r'\\["\\/bfnrt]', r'\\(?:["\\bfnrt]|u00[01][0-9a-fA-F]|u007[fF])'),
    (r'[^"\\\x00-\x1F\x7F-\x9F]', r'[^"\\\x00-\x1F\x7F]'),
    (r"[eE][+-][0-9]+", r"[eE][+-]?[0-9]+"),
)
# keywords outlines-core 0.2 drops without a word: the regex would accept values they forbid
DROPPED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedProperties",
    "unevaluatedItems",
)
RANGE_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
NOTES = ("title", "description", "$comment", "examples", "default")
DATA_KEYS = ("enum", "const", "default", "examples")
MAX_RANGE = 1000
SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


def schema_regex(text: str, whitespace: str = jsonspace.COMPACT) -> str:
    """outlines-core's regex for the JSON schema `text` with the JSON whitespace policy
    `whitespace` (BackendError when it would not enforce the schema exactly)."""
    from outlines_core.json_schema import build_regex_from_schema

    schema = small_ranges(json.loads(text))
    for where, problem in _inexact(schema, "#"):
        raise BackendError(f"outlines-core cannot enforce {problem} (at {where})")
    try:
        regex = str(build_regex_from_schema(json.dumps(schema), whitespace_pattern=jsonspace.MARK))
    except ValueError as exc:
        first = str(exc).split("\n")[0].strip()
        raise BackendError(f"outlines-core cannot express this schema: {first}") from None
    for theirs, ours in JSON_ALIGN:
        regex = regex.replace(theirs, ours)
    return jsonspace.place(regex, whitespace)


def small_ranges(schema: object) -> object:
    """`schema` with each bounded integer of at most MAX_RANGE values written as an `enum`
    (outlines-core drops `minimum`/`maximum`; the enum is the same set of values)."""
    if isinstance(schema, list):
        return [small_ranges(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in DATA_KEYS else small_ranges(v)) for k, v in schema.items()}
    values = _integer_range(out)
    if values is not None:
        out = {k: v for k, v in out.items() if k not in RANGE_KEYS and k != "type"}
        out["enum"] = values
    return out


def _integer_range(schema: dict[str, object]) -> list[int] | None:
    """The values of an integer schema bounded on both sides by at most MAX_RANGE values."""
    if schema.get("type") != "integer" or not set(schema) <= {*RANGE_KEYS, "type", *NOTES}:
        return None
    low = _bound(schema, "minimum", "exclusiveMinimum", 1)
    high = _bound(schema, "maximum", "exclusiveMaximum", -1)
    if low is None or high is None or high - low >= MAX_RANGE:
        return None
    return list(range(low, high + 1))


def _bound(schema: dict[str, object], inclusive: str, exclusive: str, step: int) -> int | None:
    import math

    found = []
    value = schema.get(inclusive)
    if isinstance(value, int | float):
        found.append(math.ceil(value) if step > 0 else math.floor(value))
    value = schema.get(exclusive)
    if isinstance(value, int | float):
        found.append((math.floor(value) + 1) if step > 0 else (math.ceil(value) - 1))
    if not found:
        return None
    return max(found) if step > 0 else min(found)


def _inexact(schema: object, where: str) -> Iterator[tuple[str, str]]:
    """(JSON pointer, problem) for each construct outlines-core would enforce differently."""
    if not isinstance(schema, dict):
        return
    for key in DROPPED:
        if key in schema:
            yield where, f"`{key}`"
    if "properties" in schema and schema.get("additionalProperties", True) is not False:
        yield where, "an object that allows extra keys (add `additionalProperties: false`)"
    if "$ref" in schema and not str(schema["$ref"]).startswith("#"):
        yield where, f"the remote reference {schema['$ref']!r}"
    for key in SCHEMA_MAPS:
        subs = schema.get(key)
        for name, sub in (subs if isinstance(subs, dict) else {}).items():
            yield from _inexact(sub, f"{where}/{key}/{name}")
    for key in SCHEMA_LISTS:
        subs = schema.get(key)
        for i, sub in enumerate(subs if isinstance(subs, list) else []):
            yield from _inexact(sub, f"{where}/{key}/{i}")
    for key in SCHEMA_VALUES:
        yield from _inexact(schema.get(key), f"{where}/{key}")
