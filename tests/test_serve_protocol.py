"""Request validation for `llmos serve`: every field read by type and range, each 400 located."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from llmos_grammar.serve.protocol import Limits, parse_chat, parse_completion
from llmos_grammar.serve.types import BadRequest, ServedModel, UnknownModel

LIMITS = Limits()
MODELS = {"base": ServedModel("base", None, "smollm2", 512)}
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
}


def chat(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "base", "messages": [{"role": "user", "content": "Hi"}]}
    body.update(fields)
    return body


def tools(*names: str) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": n, "description": "d", "parameters": WEATHER}}
        for n in names
    ]


def called(*ids: str) -> dict[str, Any]:
    calls = [
        {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        for i in ids
    ]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def answer(call_id: str, content: str = "sunny") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def user(text: str = "Hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def parse(body: object, limits: Limits = LIMITS) -> Any:
    return parse_chat(body, limits=limits, known_models=MODELS)


# (what is wrong, the body, the param the 400 names)
LOCATED: list[tuple[str, object, str]] = [
    ("not an object", ["model"], ""),
    ("no model", {"messages": [user()]}, "model"),
    ("model not a string", chat(model=3), "model"),
    ("no messages", {"model": "base"}, "messages"),
    ("empty messages", chat(messages=[]), "messages"),
    ("messages not an array", chat(messages="hi"), "messages"),
    ("message not an object", chat(messages=["hi"]), "messages[0]"),
    ("no role", chat(messages=[{"content": "x"}]), "messages[0].role"),
    (
        "unknown role",
        chat(messages=[user(), {"role": "robot", "content": "x"}]),
        "messages[1].role",
    ),
    ("function role", chat(messages=[{"role": "function", "content": "x"}]), "messages[0].role"),
    ("role not a string", chat(messages=[{"role": 1, "content": "x"}]), "messages[0].role"),
    ("user without content", chat(messages=[{"role": "user"}]), "messages[0].content"),
    ("content a number", chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    (
        "image part",
        chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
        "messages[0].content[0].type",
    ),
    (
        "audio part after text",
        chat(
            messages=[
                user(),
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "input_audio"}],
                },
            ]
        ),
        "messages[1].content[1].type",
    ),
    (
        "text part without text",
        chat(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages[0].content[0].text",
    ),
    (
        "extra key in a part",
        chat(
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {}}]}
            ]
        ),
        "messages[0].content[0].cache_control",
    ),
    ("unknown message field", chat(messages=[user() | {"weight": 1}]), "messages[0].weight"),
    ("name not a string", chat(messages=[user() | {"name": 7}]), "messages[0].name"),
    (
        "assistant without content or calls",
        chat(messages=[user(), {"role": "assistant"}, user()]),
        "messages[1].content",
    ),
    (
        "tool call without id",
        chat(
            messages=[
                user(),
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
            ]
        ),
        "messages[1].tool_calls[0].id",
    ),
    (
        "tool call of another type",
        chat(messages=[user(), {"role": "assistant", "tool_calls": [{"id": "a", "type": "x"}]}]),
        "messages[1].tool_calls[0].type",
    ),
    (
        "tool call with a bad name",
        chat(
            messages=[
                user(),
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "a b", "arguments": "{}"},
                        }
                    ],
                },
            ]
        ),
        "messages[1].tool_calls[0].function.name",
    ),
    (
        "tool call arguments not JSON",
        chat(
            messages=[
                user(),
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{x"},
                        }
                    ],
                },
            ]
        ),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "tool call arguments an object",
        chat(
            messages=[
                user(),
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "a", "type": "function", "function": {"name": "f", "arguments": {}}}
                    ],
                },
            ]
        ),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "tool message without id",
        chat(messages=[user(), called("c1"), {"role": "tool", "content": "x"}]),
        "messages[2].tool_call_id",
    ),
    (
        "tool message after no call",
        chat(messages=[user(), answer("c1")]),
        "messages[1].tool_call_id",
    ),
    (
        "tool message naming another call",
        chat(messages=[user(), called("c1"), answer("c2")]),
        "messages[2].tool_call_id",
    ),
    (
        "a call answered twice",
        chat(messages=[user(), called("c1"), answer("c1"), answer("c1")]),
        "messages[3].tool_call_id",
    ),
    (
        "an answer after the conversation went on",
        chat(messages=[user(), called("c1"), answer("c1"), user(), answer("c1")]),
        "messages[4].tool_call_id",
    ),
    (
        "a call left unanswered",
        chat(messages=[user(), called("c1", "c2"), answer("c1"), user()]),
        "messages[1].tool_calls[1]",
    ),
    (
        "a call unanswered at the end",
        chat(messages=[user(), called("c1")]),
        "messages[1].tool_calls[0]",
    ),
    (
        "a call id used twice",
        chat(messages=[user(), called("c1", "c1")]),
        "messages[1].tool_calls[1].id",
    ),
    (
        "refusal on an assistant message",
        chat(messages=[user(), {"role": "assistant", "content": "x", "refusal": "no"}, user()]),
        "messages[1].refusal",
    ),
    ("stream not a boolean", chat(stream="yes"), "stream"),
    ("max_tokens 0", chat(max_tokens=0), "max_tokens"),
    ("max_tokens a float", chat(max_tokens=1.5), "max_tokens"),
    ("max_tokens a boolean", chat(max_tokens=True), "max_tokens"),
    ("max_tokens over the model's cap", chat(max_tokens=513), "max_tokens"),
    ("max_completion_tokens 0", chat(max_completion_tokens=0), "max_completion_tokens"),
    ("the two max_tokens differ", chat(max_tokens=5, max_completion_tokens=6), "max_tokens"),
    ("temperature above 2", chat(temperature=2.5), "temperature"),
    ("temperature below 0", chat(temperature=-0.1), "temperature"),
    ("temperature a string", chat(temperature="hot"), "temperature"),
    ("top_p 0", chat(top_p=0), "top_p"),
    ("top_p above 1", chat(top_p=1.01), "top_p"),
    ("seed a float", chat(seed=1.5), "seed"),
    ("seed too large", chat(seed=2**64), "seed"),
    ("n 0", chat(n=0), "n"),
    ("n over the limit", chat(n=9), "n"),
    ("stop a number", chat(stop=5), "stop"),
    ("stop empty", chat(stop=""), "stop"),
    ("stop too many", chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    ("stop item not a string", chat(stop=["a", 3]), "stop[1]"),
    ("stop item too long", chat(stop=["x" * 300]), "stop[0]"),
    (
        "stream_options without stream",
        chat(stream_options={"include_usage": True}),
        "stream_options",
    ),
    ("stream_options unknown key", chat(stream=True, stream_options={"x": 1}), "stream_options.x"),
    (
        "include_usage not a boolean",
        chat(stream=True, stream_options={"include_usage": 1}),
        "stream_options.include_usage",
    ),
    ("logprobs asked", chat(logprobs=True), "logprobs"),
    ("top_logprobs asked", chat(top_logprobs=3), "top_logprobs"),
    ("logit_bias given", chat(logit_bias={"1": 5}), "logit_bias"),
    ("frequency_penalty", chat(frequency_penalty=0.5), "frequency_penalty"),
    ("presence_penalty", chat(presence_penalty=-1), "presence_penalty"),
    ("audio", chat(audio={"voice": "x"}), "audio"),
    ("modalities with audio", chat(modalities=["text", "audio"]), "modalities"),
    ("functions (deprecated)", chat(functions=[]), "functions"),
    ("an unknown field", chat(temperture=1), "temperture"),
    ("user not a string", chat(user=5), "user"),
    ("session with a slash", chat(session="a/b"), "session"),
    ("tools not an array", chat(tools={}), "tools"),
    ("tool not a function", chat(tools=[{"type": "code_interpreter"}]), "tools[0].type"),
    ("tool without function", chat(tools=[{"type": "function"}]), "tools[0].function"),
    (
        "tool without a name",
        chat(tools=[{"type": "function", "function": {}}]),
        "tools[0].function.name",
    ),
    (
        "tool name with a space",
        chat(tools=[{"type": "function", "function": {"name": "get weather"}}]),
        "tools[0].function.name",
    ),
    (
        "tool name too long",
        chat(tools=[{"type": "function", "function": {"name": "a" * 65}}]),
        "tools[0].function.name",
    ),
    ("two tools of one name", chat(tools=tools("a", "a")), "tools[1].function.name"),
    (
        "tool parameters not an object",
        chat(tools=[{"type": "function", "function": {"name": "a", "parameters": []}}]),
        "tools[0].function.parameters",
    ),
    (
        "tool parameters with an unsupported keyword",
        chat(
            tools=[
                {
                    "type": "function",
                    "function": {"name": "a", "parameters": {"not": {"type": "string"}}},
                }
            ]
        ),
        "tools[0].function.parameters",
    ),
    (
        "tool parameters that break the meta-schema",
        chat(
            tools=[{"type": "function", "function": {"name": "a", "parameters": {"type": "objet"}}}]
        ),
        "tools[0].function.parameters",
    ),
    (
        "tool strict not a boolean",
        chat(tools=[{"type": "function", "function": {"name": "a", "strict": "yes"}}]),
        "tools[0].function.strict",
    ),
    (
        "tool unknown key",
        chat(tools=[{"type": "function", "function": {"name": "a", "x": 1}}]),
        "tools[0].function.x",
    ),
    ("tool_choice unknown", chat(tools=tools("a"), tool_choice="any"), "tool_choice"),
    ("tool_choice without tools", chat(tool_choice="required"), "tool_choice"),
    (
        "tool_choice naming an undeclared tool",
        chat(tools=tools("a"), tool_choice={"type": "function", "function": {"name": "b"}}),
        "tool_choice.function.name",
    ),
    (
        "tool_choice of another type",
        chat(tools=tools("a"), tool_choice={"type": "allowed_tools"}),
        "tool_choice.type",
    ),
    (
        "tool_choice without function",
        chat(tools=tools("a"), tool_choice={"type": "function"}),
        "tool_choice.function",
    ),
    ("parallel_tool_calls a string", chat(parallel_tool_calls="no"), "parallel_tool_calls"),
    ("response_format a string", chat(response_format="json"), "response_format"),
    ("response_format unknown type", chat(response_format={"type": "xml"}), "response_format.type"),
    (
        "json_object with a schema",
        chat(response_format={"type": "json_object", "schema": {}}),
        "response_format.schema",
    ),
    (
        "json_schema without json_schema",
        chat(response_format={"type": "json_schema"}),
        "response_format.json_schema",
    ),
    (
        "json_schema without a name",
        chat(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
        "response_format.json_schema.name",
    ),
    (
        "json_schema whose schema is a list",
        chat(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": []}}),
        "response_format.json_schema",
    ),
    (
        "json_schema that does not compile",
        chat(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": {"$ref": "#/$defs/missing"}},
            }
        ),
        "response_format.json_schema",
    ),
    (
        "json_schema with a look-around pattern",
        chat(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": {"type": "string", "pattern": "(?=a)b"}},
            }
        ),
        "response_format.json_schema",
    ),
    (
        "json_schema strict not a boolean",
        chat(response_format={"type": "json_schema", "json_schema": {"name": "a", "strict": 1}}),
        "response_format.json_schema.strict",
    ),
    (
        "json_schema unknown key",
        chat(response_format={"type": "json_schema", "json_schema": {"name": "a", "x": 1}}),
        "response_format.json_schema.x",
    ),
    ("an unpaired surrogate", chat(messages=[user("a\ud800b")]), "messages[0].content"),
    (
        "a surrogate in a schema",
        chat(
            tools=[
                {
                    "type": "function",
                    "function": {"name": "a", "parameters": {"description": "\udc00"}},
                }
            ]
        ),
        "tools[0].function.parameters",
    ),
]


@pytest.mark.parametrize(("what", "body", "param"), LOCATED, ids=[w for w, _, _ in LOCATED])
def test_each_bad_field_is_a_located_400(what: str, body: object, param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(body)
    error = caught.value
    assert error.status == 400 and error.type == "invalid_request_error"
    assert (error.param or "") == param, error.message
    assert param in error.message  # the message names the field too
    assert "Traceback" not in error.message


def test_the_table_covers_every_field_the_issue_names() -> None:
    named = {p.split("[")[0].split(".")[0] for _, _, p in LOCATED}
    wanted = {
        "messages", "stream", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "seed", "stop", "n", "response_format", "tools", "tool_choice", "parallel_tool_calls",
        "stream_options", "user", "session", "logprobs", "logit_bias", "frequency_penalty",
    }  # fmt: skip
    assert wanted <= named


def test_an_unknown_model_is_a_404_naming_the_served_ones() -> None:
    with pytest.raises(UnknownModel) as caught:
        parse(chat(model="gpt-4o"))
    assert caught.value.status == 404 and caught.value.param == "model"
    assert "'gpt-4o'" in caught.value.message and "base" in caught.value.message
    # without a list of models the scheduler decides (it raises UnknownModel at submit)
    assert parse_chat(chat(model="gpt-4o")).model == "gpt-4o"


def test_a_whole_request_reads_into_the_typed_request() -> None:
    body = chat(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": None, "tool_calls": called("c1")["tool_calls"]},
            answer("c1", "12 C"),
            {"role": "assistant", "content": "It is 12 C.", "name": "bot"},
            user("Thanks"),
        ],
        tools=tools("get_weather", "get_time"),
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": WEATHER, "strict": True},
        },
        max_completion_tokens=100,
        temperature=0.7,
        top_p=0.9,
        seed=-5,
        stop=["\n\n", "END"],
        n=3,
        stream=True,
        stream_options={"include_usage": True},
        user="someone",
        session="conv-1",
        frequency_penalty=0,
        presence_penalty=0.0,
        logprobs=False,
        logit_bias={},
        store=False,
    )
    request = parse(body)
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert request.messages[1].content == "a\nb"
    assert request.messages[2].content == "" and request.messages[2].tool_calls[0].id == "c1"
    assert request.messages[3].tool_call_id == "c1" and request.messages[4].name == "bot"
    assert [t.name for t in request.tools] == ["get_weather", "get_time"]
    assert request.tools[0].parameters == WEATHER
    assert request.tool_choice.mode == "function" and request.tool_choice.name == "get_time"
    assert request.parallel_tool_calls is False
    fmt = request.response_format
    assert fmt.kind == "json_schema" and fmt.schema == WEATHER and fmt.name == "r" and fmt.strict
    assert request.max_tokens == 100 and request.n == 3 and request.stop == ("\n\n", "END")
    assert request.sampling.temperature == 0.7 and request.sampling.top_p == 0.9
    assert request.sampling.seed == -5
    assert request.stream and request.include_usage and request.session == "conv-1"


def test_defaults_and_nulls() -> None:
    request = parse(chat(temperature=None, stop=None, n=None, tools=None, response_format=None))
    assert request.sampling.temperature is None and request.stop == () and request.n == 1
    assert request.tool_choice.mode == "auto" and request.parallel_tool_calls is True
    assert request.response_format.kind == "text" and not request.stream
    assert parse(chat(stop="x", max_tokens=512)).stop == ("x",)
    assert parse(chat(tool_choice="none")).tool_choice.mode == "none"  # none needs no tools
    plain = parse(chat(tools=[{"type": "function", "function": {"name": "ping"}}]))
    assert plain.tools[0].parameters["properties"] == {}  # no parameters: an empty object


def test_limits_are_located_400s() -> None:
    small = Limits(max_messages=2, max_chars=50, max_string_chars=30, max_tools=1, max_n=2)
    cases: list[tuple[dict[str, Any], str]] = [
        (chat(messages=[user(), user(), user()]), "messages"),
        (chat(messages=[user("x" * 31)]), "messages[0].content"),
        (chat(messages=[user("x" * 30), user("y" * 30)]), "messages[1].content"),
        (chat(tools=tools("a", "b")), "tools"),
        (chat(n=3), "n"),
    ]
    for body, param in cases:
        with pytest.raises(BadRequest) as caught:
            parse(body, small)
        assert caught.value.param == param, caught.value.message
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(BadRequest, match="nests deeper") as caught:
        parse(chat(tools=[{"type": "function", "function": {"name": "a", "parameters": deep}}]))
    assert caught.value.param == "tools[0].function.parameters"
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(3000)}}
    with pytest.raises(BadRequest, match="characters as JSON"):
        parse(chat(tools=[{"type": "function", "function": {"name": "a", "parameters": wide}}]))


def test_a_ten_megabyte_string_is_refused_without_copying_it_around() -> None:
    big = "x" * 10_000_000
    with pytest.raises(BadRequest) as caught:
        parse(chat(messages=[user(big)]))
    assert caught.value.param == "messages[0].content" and caught.value.code == "string_too_long"
    assert len(caught.value.message) < 300


def test_parsing_leaves_the_body_as_it_was() -> None:
    body = chat(tools=tools("a"), response_format={"type": "json_object"})
    before = copy.deepcopy(body)
    parse(body)
    assert body == before


def test_completions() -> None:
    request = parse_completion(
        {"model": "base", "prompt": ["def f():"], "max_tokens": 16, "echo": False, "stop": "\n"},
        known_models=MODELS,
    )
    assert request.prompt == "def f():" and request.messages == () and request.max_tokens == 16
    assert request.stop == ("\n",)
    located: list[tuple[dict[str, Any], str]] = [
        ({"model": "base"}, "prompt"),
        ({"model": "base", "prompt": 5}, "prompt"),
        ({"model": "base", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "base", "prompt": [[1, 2]]}, "prompt[0]"),
        ({"model": "base", "prompt": "a", "echo": True}, "echo"),
        ({"model": "base", "prompt": "a", "logprobs": 2}, "logprobs"),
        ({"model": "base", "prompt": "a", "best_of": 2}, "best_of"),
        ({"model": "base", "prompt": "a", "suffix": "x"}, "suffix"),
        ({"model": "base", "prompt": "a", "tools": []}, "tools"),
        ({"model": "base", "prompt": "a", "messages": []}, "messages"),
        ({"model": "base", "prompt": "a", "temperature": 3}, "temperature"),
    ]
    for body, param in located:
        with pytest.raises(BadRequest) as caught:
            parse_completion(body, known_models=MODELS)
        assert caught.value.param == param, caught.value.message
    with pytest.raises(UnknownModel):
        parse_completion({"model": "x", "prompt": "a"}, known_models=MODELS)


def test_hostile_values_never_escape_as_other_errors() -> None:
    """Odd JSON values anywhere give BadRequest, never a TypeError or KeyError."""
    odd: list[object] = [None, True, 0, -1, 1e308, "", "x", [], {}, [None], {"": None}]
    base = chat(tools=tools("a"), response_format={"type": "json_object"}, stream=True)
    paths: list[Callable[[dict[str, Any], object], None]] = [
        lambda b, v: b.__setitem__("messages", [v]),
        lambda b, v: b["messages"][0].__setitem__("content", v),
        lambda b, v: b["messages"][0].__setitem__("role", v),
        lambda b, v: b.__setitem__("tools", [v]),
        lambda b, v: b["tools"][0].__setitem__("function", v),
        lambda b, v: b["tools"][0]["function"].__setitem__("parameters", v),
        lambda b, v: b.__setitem__("tool_choice", v),
        lambda b, v: b.__setitem__("response_format", v),
        lambda b, v: b.__setitem__("stream_options", v),
        lambda b, v: b.__setitem__("stop", v),
        lambda b, v: b.__setitem__("n", v),
    ]
    for put in paths:
        for value in odd:
            body = json.loads(json.dumps(base))
            put(body, value)
            with contextlib.suppress(BadRequest):  # accepted, or refused as a 400
                parse(body)
