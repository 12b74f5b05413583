"""Validate loaded YAML documents against the shipped JSON Schemas."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from llmos_grammar.errors import Diagnostic
from llmos_grammar.spec.yamldata import mapping
from llmos_grammar.spec.yamldoc import Doc, Key

if TYPE_CHECKING:
    from llmos_grammar.libtypes.jsonschema import SchemaError, Validator

STATE_DEFS = {
    "text": "text_state",
    "grammar": "grammar_state",
    "action": "action_state",
    "final": "final_state",
}


@cache
def schema(name: str) -> Mapping[str, object]:
    """The JSON Schema `name` ("spec" or "policy") shipped with the package."""
    text = resources.files("llmos_grammar.spec.schema").joinpath(f"{name}.schema.json").read_text()
    return mapping(json.loads(text))


@cache
def _validator(name: str, definition: str | None = None) -> Validator:
    import jsonschema

    root = schema(name)
    target = root
    if definition is not None:
        target = {"$ref": f"#/$defs/{definition}", "$defs": root["$defs"]}
    elif name == "spec":
        # States are validated one by one against the definition their `type` names,
        # so that an error speaks of that state type instead of every alternative.
        state = {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": sorted(STATE_DEFS)}},
        }
        target = {**root, "$defs": {**mapping(root["$defs"]), "state": state}}
    validator: Validator = jsonschema.Draft202012Validator(target)
    return validator


def validate(doc: Doc, name: str) -> list[Diagnostic]:
    """All schema violations of `doc`, each with a location and breadcrumb."""
    diagnostics = _errors(doc, _validator(name), doc.data, ())
    if name == "spec" and isinstance(doc.data, dict):
        states = doc.data.get("states")
        if isinstance(states, dict):
            for state_name, state in states.items():
                kind = state.get("type") if isinstance(state, dict) else None
                if kind in STATE_DEFS:
                    validator = _validator("spec", STATE_DEFS[kind])
                    diagnostics += _errors(doc, validator, state, ("states", state_name))
    return diagnostics


def _errors(doc: Doc, validator: Validator, data: object, base: Key) -> list[Diagnostic]:
    found = [e for error in validator.iter_errors(data) for e in _specific(error)]
    found.sort(key=lambda e: list(map(str, e.absolute_path)))
    return [_diagnostic(doc, error, base) for error in found]


def _specific(error: SchemaError) -> list[SchemaError]:
    """A oneOf/anyOf error as the errors of the alternatives whose type the value has (e.g. the
    list form of `on:`), so that the message names the key at fault; itself otherwise."""
    if error.validator not in ("oneOf", "anyOf"):
        return [error]
    deeper = [e for e in error.context if not (e.validator == "type" and not e.relative_path)]
    if not deeper:
        return [error]
    return [e for sub in deeper for e in _specific(sub)]


def _diagnostic(doc: Doc, error: SchemaError, base: Key) -> Diagnostic:
    path: Key = (*base, *error.absolute_path)
    hint = ""
    key_location = False
    message = error.message
    if error.validator == "additionalProperties":
        allowed = sorted(mapping(error.schema.get("properties")))
        extras = (
            [k for k in error.instance if k not in allowed]
            if isinstance(error.instance, dict)
            else []
        )
        if extras:
            unknown = extras[0]
            path = (*path, unknown)
            key_location = True
            message = f"unknown key {unknown!r}"
            close = difflib.get_close_matches(unknown, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
    elif error.validator == "required":
        hint = "add the missing key"
    elif error.validator == "enum":
        options = [str(v) for v in _values(error.validator_value)]
        close = difflib.get_close_matches(str(error.instance), options, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(options)}"
    elif error.validator == "type":
        message = f"{_short(error.instance)} is not of type {_types(error.validator_value)}"
    return Diagnostic(
        severity="error",
        message=message,
        location=doc.loc(path, key=key_location),
        path=crumb(path),
        code="schema",
        hint=hint,
    )


def _values(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]


def _types(value: object) -> str:
    return " or ".join(str(v) for v in _values(value))


def _short(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def crumb(path: Key) -> str:
    """A breadcrumb such as `states.code.grammar` or `tests.code.accept[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
