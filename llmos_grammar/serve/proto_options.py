"""A chat request's `tools`, `tool_choice`, `response_format` and `stop`, checked and typed."""

from __future__ import annotations

import re
from typing import Literal

from llmos_grammar.serve.proto_fields import Fields, check_text, text_value, wrong_type
from llmos_grammar.serve.proto_messages import NAME
from llmos_grammar.serve.proto_schema import canonical, check_schema
from llmos_grammar.serve.types import BadRequest, JsonSchema, ResponseFormat, Tool, ToolChoice

NO_PARAMETERS: JsonSchema = {"type": "object", "properties": {}, "additionalProperties": False}
CHOICES: dict[str, Literal["none", "auto", "required"]] = {
    "none": "none",
    "auto": "auto",
    "required": "required",
}
SESSION = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def parse_tools(fields: Fields) -> tuple[Tool, ...]:
    tools: list[Tool] = []
    for param, item in fields.items("tools", fields.budget.limits.max_tools, "tools"):
        entry = Fields(item, param, fields.budget)
        kind = entry.required("type")
        if kind != "function":
            shown = repr(kind) if isinstance(kind, str) else str(kind)
            raise BadRequest(
                f"{entry.param('type')} is {shown}; only function tools are supported",
                param=entry.param("type"),
                code="unsupported_tool",
            )
        function = entry.obj("function", required=True)
        assert function is not None
        tool = _function(function)
        entry.done()
        if any(t.name == tool.name for t in tools):
            where = function.param("name")
            raise BadRequest(f"{where}: a second tool named {tool.name!r}", param=where)
        tools.append(tool)
    return tuple(tools)


def _function(fields: Fields) -> Tool:
    name = fields.short("name", required=True) or ""
    if not NAME.fullmatch(name):
        where = fields.param("name")
        raise BadRequest(
            f"{where} is {name!r}; a function name is 1 to 64 letters, digits, '_' or '-'",
            param=where,
        )
    description = fields.text("description") or ""
    parameters = schema_value(fields, "parameters") or NO_PARAMETERS
    strict = bool(fields.boolean("strict"))
    fields.done()
    return Tool(name, description, parameters, strict)


def schema_value(fields: Fields, key: str, param: str | None = None) -> JsonSchema | None:
    """A JSON schema object within the size and depth limits, compiled by the backends
    (its errors at `param`, default the key's own place)."""
    value = fields.raw(key)
    if value is None:
        return None
    where = param or fields.param(key)
    if not isinstance(value, dict):
        raise wrong_type(where, "a JSON schema object", value)
    limits = fields.budget.limits
    depth = _depth(value, limits.max_schema_depth)
    if depth > limits.max_schema_depth:
        raise BadRequest(
            f"{where} nests deeper than {limits.max_schema_depth} levels: flatten the schema",
            param=where,
        )
    try:
        size = len(canonical(value))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{where} is not JSON data: {exc}", param=where) from None
    if size > limits.max_schema_chars:
        raise BadRequest(
            f"{where} is {size} characters as JSON; at most {limits.max_schema_chars} are accepted",
            param=where,
            code="schema_too_large",
        )
    fields.budget.spend(size, where)
    _check_texts(value, where)
    check_schema(value, where)
    return value


def _depth(value: object, limit: int) -> int:
    """How deep `value` nests (stops counting past `limit`)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _check_texts(value: object, where: str) -> None:
    """Every string (keys included) of a schema is text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_tool_choice(fields: Fields, tools: tuple[Tool, ...]) -> ToolChoice:
    value = fields.raw("tool_choice")
    if value is None:
        return ToolChoice("auto")
    if isinstance(value, str):
        mode = CHOICES.get(value)
        if mode is None:
            raise BadRequest(
                f"tool_choice is {value!r}; it is none, auto, required or "
                '{"type": "function", "function": {"name": ...}}',
                param="tool_choice",
            )
        choice = ToolChoice(mode)
    else:
        choice = _named_choice(Fields(value, "tool_choice", fields.budget), tools)
    if choice.mode != "none" and not tools:
        raise BadRequest(
            f"tool_choice is {choice.mode!r} but the request declares no tools: "
            "add tools or leave tool_choice out",
            param="tool_choice",
        )
    return choice


def _named_choice(fields: Fields, tools: tuple[Tool, ...]) -> ToolChoice:
    kind = fields.required("type")
    if kind != "function":
        raise BadRequest(
            f'{fields.param("type")} must be "function" (a named function)',
            param=fields.param("type"),
        )
    function = fields.obj("function", required=True)
    assert function is not None
    name = function.short("name", required=True) or ""
    function.done()
    fields.done()
    if not any(t.name == name for t in tools):
        declared = ", ".join(t.name for t in tools) or "none"
        raise BadRequest(
            f"tool_choice.function.name is {name!r}, which is not a declared tool "
            f"(declared: {declared})",
            param="tool_choice.function.name",
        )
    return ToolChoice("function", name)


def parse_response_format(fields: Fields) -> ResponseFormat:
    entry = fields.obj("response_format")
    if entry is None:
        return ResponseFormat()
    kind = entry.required("type")
    if kind == "text" or kind == "json_object":
        entry.done()
        return ResponseFormat(kind)
    if kind != "json_schema":
        shown = repr(kind) if isinstance(kind, str) else str(kind)
        raise BadRequest(
            f"response_format.type is {shown}; it is text, json_object or json_schema",
            param="response_format.type",
        )
    spec = entry.obj("json_schema", required=True)
    assert spec is not None
    name = spec.short("name", required=True) or ""
    if not NAME.fullmatch(name):
        raise BadRequest(
            f"response_format.json_schema.name is {name!r}; a name is 1 to 64 letters, "
            "digits, '_' or '-'",
            param="response_format.json_schema.name",
        )
    spec.text("description")
    schema = schema_value(spec, "schema", "response_format.json_schema")
    strict = bool(spec.boolean("strict"))
    spec.done()
    entry.done()
    return ResponseFormat("json_schema", schema, name, strict)


def parse_stop(fields: Fields) -> tuple[str, ...]:
    value = fields.raw("stop")
    limits = fields.budget.limits
    if value is None:
        return ()
    items: list[tuple[str, object]]
    if isinstance(value, str):
        items = [("stop", value)]
    elif isinstance(value, list):
        if len(value) > limits.max_stop:
            raise BadRequest(
                f"stop holds {len(value)} strings; at most {limits.max_stop} are accepted",
                param="stop",
            )
        items = [(f"stop[{i}]", v) for i, v in enumerate(value)]
    else:
        raise wrong_type("stop", "a string or an array of strings", value)
    out = []
    for param, item in items:
        text = text_value(item, param, fields.budget, limits.max_stop_chars)
        if not text:
            raise BadRequest(f"{param} is empty: a stop string has characters", param=param)
        out.append(text)
    return tuple(out)


def parse_stream_options(fields: Fields, stream: bool) -> bool:
    """`stream_options.include_usage` (only with `stream: true`)."""
    options = fields.obj("stream_options")
    if options is None:
        return False
    if not stream:
        raise BadRequest("stream_options is only allowed with stream: true", param="stream_options")
    include = bool(options.boolean("include_usage"))
    options.done()
    return include


def session_value(fields: Fields) -> str | None:
    """The explicit-session extension field (a client-chosen id)."""
    value = fields.short("session")
    if value is not None and not SESSION.fullmatch(value):
        param = fields.param("session")
        raise BadRequest(
            f"{param} must be 1 to 128 letters, digits, '.', '_', ':' or '-'", param=param
        )
    return value
