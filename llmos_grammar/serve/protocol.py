"""OpenAI request bodies -> a validated `GenerationRequest`, or a `BadRequest` at the field.

`parse_chat` reads a /v1/chat/completions body and `parse_completion` a /v1/completions
one. Every field is read by type and range; a field this server does not support (or
does not know) is refused by name unless it asks for nothing (`logprobs: false`,
`frequency_penalty: 0`), so no part of a request is ignored in silence. A model that is
not served is an `UnknownModel` (404). `Limits` bounds what one request may hold.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from llmos_grammar.serve.proto_fields import MAX_INT, Budget, Fields, Limits, text_value
from llmos_grammar.serve.proto_messages import parse_messages
from llmos_grammar.serve.proto_options import (
    parse_response_format,
    parse_stop,
    parse_stream_options,
    parse_tool_choice,
    parse_tools,
    session_value,
)
from llmos_grammar.serve.types import (
    BadRequest,
    GenerationRequest,
    SamplingParams,
    ServedModel,
    UnknownModel,
)

__all__ = ["Limits", "parse_chat", "parse_completion"]

Models = Collection[str] | Mapping[str, ServedModel]
LIMITS = Limits()

# fields both endpoints take when they ask for nothing
COMMON_NEUTRAL: dict[str, tuple[object, ...]] = {
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
    "logit_bias": ({},),
}
CHAT_NEUTRAL: dict[str, tuple[object, ...]] = {
    **COMMON_NEUTRAL,
    "logprobs": (False,),
    "top_logprobs": (0,),
    "store": (False,),
    "modalities": (["text"],),
}
COMPLETION_NEUTRAL: dict[str, tuple[object, ...]] = {
    **COMMON_NEUTRAL,
    "logprobs": (),
    "echo": (False,),
    "best_of": (1,),
    "suffix": ("",),
}


def parse_chat(
    body: object, *, limits: Limits = LIMITS, known_models: Models | None = None
) -> GenerationRequest:
    """A /v1/chat/completions body, checked whole; BadRequest (400) at the first wrong
    field, UnknownModel (404) for a model not among `known_models` (None: not checked
    here; a mapping to `ServedModel`s also caps max_tokens by the model's)."""
    fields = Fields(body, "", Budget(limits))
    model = _model(fields, known_models)
    max_tokens = _max_tokens(fields, known_models, model)
    messages = parse_messages(fields)
    tools = parse_tools(fields)
    tool_choice = parse_tool_choice(fields, tools)
    parallel = fields.boolean("parallel_tool_calls")
    response_format = parse_response_format(fields)
    request = replace(
        _common(fields, limits, model, max_tokens),
        messages=messages,
        response_format=response_format,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=True if parallel is None else parallel,
    )
    fields.done(CHAT_NEUTRAL)
    return request


def parse_completion(
    body: object, *, limits: Limits = LIMITS, known_models: Models | None = None
) -> GenerationRequest:
    """A /v1/completions body (one prompt string), checked whole, as `parse_chat`."""
    fields = Fields(body, "", Budget(limits))
    model = _model(fields, known_models)
    max_tokens = _max_tokens(fields, known_models, model)
    prompt = _prompt(fields)
    request = replace(_common(fields, limits, model, max_tokens), prompt=prompt)
    fields.done(COMPLETION_NEUTRAL)
    return request


def _common(
    fields: Fields, limits: Limits, model: str, max_tokens: int | None
) -> GenerationRequest:
    """The fields both endpoints share (sampling, stop, n, streaming, the session)."""
    sampling = SamplingParams(
        temperature=fields.number("temperature", 0.0, 2.0),
        top_p=fields.number("top_p", 0.0, 1.0, open_low=True),
        seed=fields.integer("seed", -MAX_INT - 1),
    )
    stream = bool(fields.boolean("stream"))
    fields.text("user", max_chars=limits.max_id_chars)  # metadata on the end user: not used
    return GenerationRequest(
        model=model,
        max_tokens=max_tokens,
        sampling=sampling,
        stop=parse_stop(fields),
        n=fields.integer("n", 1, limits.max_n) or 1,
        stream=stream,
        include_usage=parse_stream_options(fields, stream),
        session=session_value(fields),
    )


def _model(fields: Fields, known: Models | None) -> str:
    model = fields.short("model", required=True) or ""
    if known is not None and model not in known:
        names = ", ".join(sorted(known)) or "none"
        raise UnknownModel(
            f"the model {model!r} is not served here (served: {names}); GET /v1/models lists them",
            param="model",
            code="model_not_found",
        )
    return model


def _max_tokens(fields: Fields, known: Models | None, model: str) -> int | None:
    """`max_completion_tokens` or its older name `max_tokens` (both: the same value), at
    most the model's cap."""
    new = fields.integer("max_completion_tokens", 1)
    old = fields.integer("max_tokens", 1)
    if new is not None and old is not None and new != old:
        raise BadRequest(
            f"max_tokens ({old}) and max_completion_tokens ({new}) differ: send one of them",
            param="max_tokens",
        )
    wanted = new if new is not None else old
    cap = known[model].max_tokens if isinstance(known, Mapping) else None
    if wanted is not None and cap is not None and wanted > cap:
        param = "max_completion_tokens" if new is not None else "max_tokens"
        raise BadRequest(
            f"{param} is {wanted}; model {model!r} writes at most {cap} tokens a reply",
            param=param,
        )
    return wanted


def _prompt(fields: Fields) -> str:
    value = fields.required("prompt")
    if isinstance(value, list):
        if len(value) != 1:
            raise BadRequest(
                f"prompt holds {len(value)} prompts; send one prompt a request",
                param="prompt",
            )
        if not isinstance(value[0], str):
            raise BadRequest(
                "prompt[0] must be a string (token arrays are not accepted)", param="prompt[0]"
            )
        return text_value(value[0], "prompt[0]", fields.budget)
    return fields.text("prompt") or ""
