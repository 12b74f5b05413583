"""OpenAI's response objects built from a request's events (`chat.completion`, `text_completion`).

The `llmos` extension field groups a served spec's records by kind, `{"states": [...],
"actions": [...]}`, on the chat message or the completion choice; streamed deltas carry
the same shape with one record each, so concatenating their lists gives the whole field.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from llmos_grammar import __version__
from llmos_grammar.serve.http_errors import Failed, InternalError
from llmos_grammar.serve.types import (
    ChoiceDone,
    RequestDone,
    RequestFailed,
    ServeEvent,
    ToolCall,
    Usage,
)

Endpoint = Literal["chat", "completion"]
FINGERPRINT = f"llmos-grammar-{__version__}"
_PREFIX = {"chat": "chatcmpl-", "completion": "cmpl-"}
_GROUPS = {"state": "states", "action": "actions", "trace": "traces"}


@dataclass(frozen=True)
class Head:
    """What every object of one response shares: its endpoint, id, time and model."""

    endpoint: Endpoint
    id: str
    created: int
    model: str

    @classmethod
    def new(cls, endpoint: Endpoint, model: str) -> Head:
        return cls(endpoint, _PREFIX[endpoint] + uuid.uuid4().hex, int(time.time()), model)

    def object(self, chunk: bool = False) -> dict[str, object]:
        kind = "chat.completion" if self.endpoint == "chat" else "text_completion"
        return {
            "id": self.id,
            "object": kind + ".chunk" if chunk and self.endpoint == "chat" else kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
        }


@dataclass(frozen=True)
class Collected:
    """A finished request: each choice's end and the usage."""

    choices: tuple[ChoiceDone, ...]
    usage: Usage


async def collect(events: AsyncIterator[ServeEvent]) -> Collected:
    """Read a request's events to the end; raise Failed when it failed."""
    done: dict[int, ChoiceDone] = {}
    async for event in events:
        if isinstance(event, ChoiceDone):
            done[event.choice] = event
        elif isinstance(event, RequestFailed):
            raise Failed(event)
        elif isinstance(event, RequestDone):
            return Collected(tuple(done[i] for i in sorted(done)), event.usage)
    raise InternalError("the request ended without a result")


def response_json(head: Head, collected: Collected) -> dict[str, object]:
    """The whole `chat.completion` or `text_completion` object."""
    shape = _chat_choice if head.endpoint == "chat" else _completion_choice
    return {
        **head.object(),
        "choices": [shape(choice) for choice in collected.choices],
        "usage": usage_json(collected.usage),
    }


def _chat_choice(done: ChoiceDone) -> dict[str, object]:
    message: dict[str, object] = {
        "role": "assistant",
        "content": None if done.tool_calls and not done.content else done.content,
        "refusal": None,
    }
    if done.tool_calls:
        message["tool_calls"] = [tool_call_json(call) for call in done.tool_calls]
    if done.llmos:
        message["llmos"] = llmos_json(done.llmos)
    return {
        "index": done.choice,
        "message": message,
        "logprobs": None,
        "finish_reason": done.finish_reason,
    }


def _completion_choice(done: ChoiceDone) -> dict[str, object]:
    choice: dict[str, object] = {
        "index": done.choice,
        "text": done.content,
        "logprobs": None,
        "finish_reason": done.finish_reason,
    }
    if done.llmos:
        choice["llmos"] = llmos_json(done.llmos)
    return choice


def usage_json(usage: Usage) -> dict[str, object]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def tool_call_json(call: ToolCall) -> dict[str, object]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def llmos_json(records: Sequence[Mapping[str, object]]) -> dict[str, list[Mapping[str, object]]]:
    """Records grouped by kind: `states`, `actions`, `traces` (any other kind under `events`)."""
    grouped: dict[str, list[Mapping[str, object]]] = {}
    for record in records:
        grouped.setdefault(_GROUPS.get(str(record.get("type")), "events"), []).append(record)
    return grouped
