"""A chat request's `messages`: roles, contents (a string or text parts), calls and answers.

Every tool message answers a call of the assistant message right before it (only tool
messages between), each call once; every call is answered before the conversation goes on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from llmos_grammar.serve.proto_fields import Fields, kind_of, wrong_type
from llmos_grammar.serve.types import BadRequest, Message, Role, ToolCall

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
# fields of a message that ask for nothing when null or as here
NEUTRAL: dict[str, tuple[object, ...]] = {"refusal": (), "audio": (), "function_call": ()}


def parse_messages(fields: Fields) -> tuple[Message, ...]:
    """The `messages` array of a chat body, checked message by message and as a whole."""
    fields.required("messages")
    items = list(fields.items("messages", fields.budget.limits.max_messages, "messages"))
    if not items:
        raise BadRequest("messages is empty: send at least one message", param="messages")
    messages = tuple(_message(Fields(item, param, fields.budget)) for param, item in items)
    check_calls(messages)
    return messages


def _message(fields: Fields) -> Message:
    role_text = fields.required("role")
    param = fields.param("role")
    if not isinstance(role_text, str):
        raise wrong_type(param, "a string", role_text)
    role = ROLES.get(role_text)
    if role is None:
        hint = "; send tool results as role tool" if role_text == "function" else ""
        raise BadRequest(
            f"{param} is {role_text!r}; the roles are system, developer, user, assistant "
            f"and tool{hint}",
            param=param,
        )
    name = _name(fields, "name")
    if role == "assistant":
        calls = _calls(fields)
        content = _content(fields, required=not calls)
        fields.done(NEUTRAL)
        return Message("assistant", content, tool_calls=calls, name=name)
    call_id = fields.short("tool_call_id", required=True) if role == "tool" else None
    content = _content(fields, required=True)
    fields.done()
    return Message(role, content, tool_call_id=call_id, name=name)


def _name(fields: Fields, key: str) -> str | None:
    name = fields.short(key)
    if name is not None and not name.strip():
        raise BadRequest(f"{fields.param(key)} is empty", param=fields.param(key))
    return name


def _content(fields: Fields, *, required: bool) -> str:
    """A string, or an array of text parts (joined by newlines)."""
    value = fields.required("content") if required else fields.raw("content")
    param = fields.param("content")
    if value is None:
        return ""
    if isinstance(value, str):
        return fields.text("content") or ""
    if not isinstance(value, list):
        raise wrong_type(param, "a string or an array of text parts", value)
    texts = []
    for i, part in enumerate(value):
        part_fields = Fields(part, f"{param}[{i}]", fields.budget)
        kind = part_fields.required("type")
        if kind != "text":
            where = part_fields.param("type")
            shown = repr(kind) if isinstance(kind, str) else kind_of(kind)
            raise BadRequest(
                f"{where} is {shown}; only text parts are supported (no images, audio or "
                'files): send {"type": "text", "text": ...}',
                param=where,
                code="unsupported_content",
            )
        texts.append(part_fields.text("text", required=True) or "")
        part_fields.done()
    return "\n".join(texts)


def _calls(fields: Fields) -> tuple[ToolCall, ...]:
    """An assistant message's `tool_calls`."""
    limits = fields.budget.limits
    calls = []
    for param, item in fields.items("tool_calls", limits.max_tools * 4, "tool calls"):
        call = Fields(item, param, fields.budget)
        call_id = call.short("id", required=True) or ""
        kind = call.required("type")
        if kind != "function":
            raise BadRequest(f'{call.param("type")} must be "function"', param=call.param("type"))
        function = call.obj("function", required=True)
        assert function is not None
        name = function.short("name", required=True) or ""
        if not NAME.fullmatch(name):
            raise _bad_name(function.param("name"), name)
        arguments = function.text("arguments", required=True) or ""
        _check_json(arguments, function.param("arguments"))
        function.done()
        call.done()
        calls.append(ToolCall(call_id, name, arguments))
    return tuple(calls)


def _check_json(text: str, param: str) -> None:
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise BadRequest(
            f"{param} is not JSON text ({why}): send the arguments as the model wrote them",
            param=param,
        ) from None


def _bad_name(param: str, name: str) -> BadRequest:
    return BadRequest(
        f"{param} is {name!r}; a function name is 1 to 64 letters, digits, '_' or '-'",
        param=param,
    )


def check_calls(messages: Sequence[Message]) -> None:
    """Tool messages answer the calls right before them, each once; no call goes unanswered."""
    open_calls: dict[str, int] = {}  # call id -> its index in the calling message
    caller = -1
    seen: set[str] = set()
    for i, message in enumerate(messages):
        if message.role == "tool":
            call_id = message.tool_call_id or ""
            if call_id not in open_calls:
                raise _stray(i, call_id, caller, call_id in seen)
            del open_calls[call_id]
            continue
        if open_calls:
            raise _unanswered(caller, open_calls)
        caller = i if message.tool_calls else -1
        for k, call in enumerate(message.tool_calls):
            if call.id in seen:
                param = f"messages[{i}].tool_calls[{k}].id"
                raise BadRequest(f"{param}: the call id {call.id!r} is used twice", param=param)
            seen.add(call.id)
            open_calls[call.id] = k
    if open_calls:
        raise _unanswered(caller, open_calls)


def _stray(i: int, call_id: str, caller: int, answered: bool) -> BadRequest:
    param = f"messages[{i}].tool_call_id"
    if answered:
        why = "answers a call that was answered before or made earlier in the conversation"
    elif caller < 0:
        why = "follows no assistant message with tool_calls"
    else:
        why = f"names no call of messages[{caller}].tool_calls"
    return BadRequest(
        f"{param} {call_id!r} {why}: a tool message answers a call of the assistant "
        "message right before it (only tool messages between), once",
        param=param,
    )


def _unanswered(caller: int, open_calls: dict[str, int]) -> BadRequest:
    call_id, k = next(iter(open_calls.items()))
    param = f"messages[{caller}].tool_calls[{k}]"
    return BadRequest(
        f"{param}: the call {call_id!r} has no tool message answering it: add a tool message "
        f"with tool_call_id {call_id!r} after messages[{caller}]",
        param=param,
    )
