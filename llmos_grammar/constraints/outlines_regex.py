"""A grammar source as the regex outlines-core indexes, or the reason it cannot be one."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from llmos_grammar.errors import BackendError
from llmos_grammar.ir import GrammarSource

# JSON whitespace between tokens, as llguidance allows it (not before or after the value)
WHITESPACE = r"[ \t\n\r]*"
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
SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


def outlines_regex(source: GrammarSource, close: str | None) -> str:
    """The regex of `source` followed by the literal `close`; BackendError with the reason
    when outlines-core cannot express `source` exactly."""
    if source.kind == "lark":
        raise BackendError("Lark grammars are enforced by llguidance (as in Outlines itself)")
    body = source.text if source.kind == "regex" else schema_regex(source.text)
    return f"(?:{body}){re.escape(close)}" if close else body


def schema_regex(text: str) -> str:
    """outlines-core's regex for the JSON schema `text` (BackendError when it is not exact)."""
    from outlines_core.json_schema import build_regex_from_schema

    schema = json.loads(text)
    for where, problem in _inexact(schema, "#"):
        raise BackendError(f"outlines-core cannot enforce {problem} (at {where})")
    try:
        return str(build_regex_from_schema(text, whitespace_pattern=WHITESPACE))
    except ValueError as exc:
        first = str(exc).split("\n")[0].strip()
        raise BackendError(f"outlines-core cannot express this schema: {first}") from None


def _inexact(schema: Any, where: str) -> Iterator[tuple[str, str]]:
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
        for name, sub in (schema.get(key) or {}).items():
            yield from _inexact(sub, f"{where}/{key}/{name}")
    for key in SCHEMA_LISTS:
        for i, sub in enumerate(schema.get(key) or []):
            yield from _inexact(sub, f"{where}/{key}/{i}")
    for key in SCHEMA_VALUES:
        yield from _inexact(schema.get(key), f"{where}/{key}")
