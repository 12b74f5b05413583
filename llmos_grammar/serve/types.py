"""What the HTTP layer hands the scheduler (a validated request) and what comes back (events).

The HTTP layer (`app.py`) turns a JSON body into a `GenerationRequest` (`protocol.py`
validates it, with the field that is wrong in every error), submits it to the
`Scheduler`, and turns the `ServeEvent`s of its `Ticket` into OpenAI responses or
server-sent chunks. Nothing here imports FastAPI, torch or an engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls"]
JsonSchema = Mapping[str, object]


@dataclass(frozen=True)
class ToolCall:
    """One call of a client-side tool, as OpenAI's `tool_calls` items carry it."""

    id: str
    name: str
    arguments: str  # JSON text, exactly as the model wrote it


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant message that called tools
    tool_call_id: str | None = None  # a tool message: the call it answers
    name: str | None = None


@dataclass(frozen=True)
class Tool:
    """A client-side function tool: its name, description and JSON schema of arguments."""

    name: str
    description: str
    parameters: JsonSchema
    strict: bool = False


@dataclass(frozen=True)
class ToolChoice:
    mode: Literal["none", "auto", "required", "function"] = "auto"
    name: str | None = None  # the function's name when mode == "function"


@dataclass(frozen=True)
class ResponseFormat:
    kind: Literal["text", "json_object", "json_schema"] = "text"
    schema: JsonSchema | None = None  # json_schema only
    name: str | None = None
    strict: bool = False


@dataclass(frozen=True)
class SamplingParams:
    temperature: float | None = None  # None: the spec's own setting
    top_p: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """One validated /v1/chat/completions or /v1/completions request."""

    model: str
    messages: tuple[Message, ...] = ()  # chat; empty for a raw completion
    prompt: str | None = None  # /v1/completions: a raw prompt, no chat template
    max_tokens: int | None = None  # None: the spec's budget
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    n: int = 1
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    stream: bool = False
    include_usage: bool = False
    session: str | None = None  # an explicit server-held conversation (extension)


# ---- events of one request, in order ------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    """Visible text of choice `choice` (what goes into `content`)."""

    choice: int
    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True)
class LlmosDelta:
    """A step of a served spec's run for the `llmos` extension field.

    `record` is JSON-ready: {"type": "state", "state", "trigger"} or
    {"type": "action", "state", "action", "input", "output", "status",
    "exit_code", "limit_hit", "duration_s"}; with `llmos serve --traces N`, at the
    choice's end, {"type": "trace", "id", "url"} (the trace kept for `GET /traces/{id}`).
    """

    choice: int
    record: Mapping[str, object]
    kind: Literal["llmos"] = "llmos"


@dataclass(frozen=True)
class ToolCallDelta:
    """A client-side tool call, whole (the HTTP layer streams it as OpenAI deltas)."""

    choice: int
    index: int
    call: ToolCall
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True)
class ChoiceDone:
    choice: int
    finish_reason: FinishReason
    content: str  # the whole visible text of the choice (None in OpenAI when tool calls only)
    tool_calls: tuple[ToolCall, ...] = ()
    llmos: tuple[Mapping[str, object], ...] = ()  # every LlmosDelta record of the choice
    kind: Literal["choice_done"] = "choice_done"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens served from a kept cache, not prefilled


@dataclass(frozen=True)
class RequestDone:
    usage: Usage
    kind: Literal["done"] = "done"


@dataclass(frozen=True)
class RequestFailed:
    """The request failed after it was accepted (the HTTP layer maps it to OpenAI's error)."""

    status: int
    message: str
    type: str = "server_error"
    param: str | None = None
    code: str | None = None
    kind: Literal["failed"] = "failed"


ServeEvent = TextDelta | LlmosDelta | ToolCallDelta | ChoiceDone | RequestDone | RequestFailed


# ---- errors raised by submit (before anything ran) ------------------------------------


class ServeError(Exception):
    """A request refused with an HTTP status, in OpenAI's error shape."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BadRequest(ServeError):
    status = 400


class UnknownModel(ServeError):
    status = 404
    type = "invalid_request_error"


class QueueFull(ServeError):
    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, code="queue_full")
        self.retry_after_s = retry_after_s


class Draining(ServeError):
    status = 503
    type = "server_error"


# ---- the scheduler, as the HTTP layer uses it -----------------------------------------


@dataclass(frozen=True)
class ServedModel:
    id: str  # a spec's name, or the base model's name
    spec: str | None  # the spec file, None for the plain base model
    model: str  # the model the engine loaded
    max_tokens: int  # the cap on max_tokens for this model


@dataclass(frozen=True)
class SchedulerStats:
    queued: int
    running_rows: int
    kept_rows: int
    kept_bytes: int
    prompt_tokens: int  # totals since start
    cached_tokens: int
    completion_tokens: int


class Ticket(Protocol):
    """One accepted request: its events (ending with RequestDone or RequestFailed)."""

    def events(self) -> AsyncIterator[ServeEvent]: ...

    def cancel(self) -> None:
        """The client went away: free its rows and kill its running actions at once."""


class Scheduler(Protocol):
    def models(self) -> tuple[ServedModel, ...]: ...

    def submit(self, request: GenerationRequest) -> Ticket:
        """Queue a request; raises UnknownModel, BadRequest, QueueFull or Draining."""

    def stats(self) -> SchedulerStats: ...

    def drain(self, grace_s: float) -> None:
        """Refuse new requests; let running ones finish for grace_s, then kill what is left."""

    def close(self) -> None: ...
