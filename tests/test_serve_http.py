"""`llmos serve`'s HTTP layer on a real server (127.0.0.1, a subprocess) driven by the OpenAI
SDK and raw HTTP: OpenAI's response and chunk shapes, the `llmos` field, tool calls, usage.

The scheduler behind it is scripted (tests/serve_http_support.py): what each request
does is the first word of its last user message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2 as httpx
import openai
import pytest

from tests.serve_http_support import ACTION, Running

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculate",
            "description": "evaluate an arithmetic expression",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("serve"))
    yield running
    running.stop()


@pytest.fixture
def client(server: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def chat(server: Running, body: dict[str, object]) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)


def sse(text: str) -> list[str]:
    """The data fields of a server-sent event stream, in order."""
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# ---- whole responses -------------------------------------------------------------------


def test_models_lists_every_served_model(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == ["calc", "tiny"]
    assert {m.object for m in models} == {"model"}
    assert models[0].llmos == {"spec": True, "max_tokens": 256}  # type: ignore[attr-defined]
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_a_chat_completion_has_openais_shape(server: Running) -> None:
    answer = chat(server, {"model": "calc", "messages": user("echo forty two")})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["id"].startswith("chatcmpl-") and len(body["id"]) > 20
    assert body["object"] == "chat.completion" and body["model"] == "calc"
    assert isinstance(body["created"], int) and body["system_fingerprint"]
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "forty two", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {
        "prompt_tokens": 13,
        "completion_tokens": 2,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_the_sdk_reads_the_llmos_field_and_cached_tokens(client: openai.OpenAI) -> None:
    messages = [
        {"role": "user", "content": "What is 48*27?"},
        {"role": "assistant", "content": "1296"},
        {"role": "user", "content": "llmos"},
    ]
    done = client.chat.completions.create(model="calc", messages=messages)  # type: ignore[arg-type]
    message = done.choices[0].message
    assert message.content == "48*27 = 1296"
    assert message.llmos == {  # type: ignore[attr-defined]
        "states": [{"type": "state", "state": "code", "trigger": "[CODE]"}],
        "actions": [ACTION],
    }
    assert done.usage is not None and done.usage.prompt_tokens_details is not None
    assert done.usage.prompt_tokens_details.cached_tokens == 8


def test_n_choices_come_in_order(server: Running) -> None:
    body = chat(server, {"model": "calc", "n": 2, "messages": user("echo a b")}).json()
    assert [(c["index"], c["message"]["content"]) for c in body["choices"]] == [
        (0, "a b"),
        (1, "a b"),
    ]
    assert body["usage"]["completion_tokens"] == 4


def test_a_tool_call_has_openais_shape(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(
        model="tiny",
        messages=user("tool"),  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
    )
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id == "call_0" and call.type == "function"
    assert call.function.name == "calculate"
    assert json.loads(call.function.arguments) == {"expression": "48*27 " * 10}


def test_a_completion_has_openais_shape(client: openai.OpenAI) -> None:
    done = client.completions.create(model="tiny", prompt="echo raw prompt")
    assert done.object == "text_completion" and done.id.startswith("cmpl-")
    assert [(c.index, c.text, c.finish_reason) for c in done.choices] == [(0, "raw prompt", "stop")]
    assert done.usage is not None and done.usage.completion_tokens == 2


def test_the_session_header_reaches_the_scheduler(server: Running) -> None:
    answer = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "calc", "messages": user("echo session one")},
        headers={"X-LLMOS-Session": "conv-1.a:b"},
        timeout=60,
    )
    assert answer.status_code == 200
    server.wait_for("submit", script="echo session one", session="conv-1.a:b")
    bad = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "calc", "messages": user("echo x")},
        headers={"X-LLMOS-Session": "../../etc/passwd"},
        timeout=60,
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "session"


# ---- streams ---------------------------------------------------------------------------


def test_a_stream_is_role_content_finish_usage_done(server: Running) -> None:
    body = {
        "model": "calc",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": user("echo one two"),
    }
    answer = chat(server, body)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    data = sse(answer.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert all("usage" in c for c in chunks)  # null until the last one, as OpenAI sends it
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks[:-1]]
    assert deltas == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "one"}, None),
        ({"content": " two"}, None),
        ({}, "stop"),
    ]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 2
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_without_include_usage_no_chunk_has_usage(server: Running) -> None:
    data = sse(chat(server, {"model": "calc", "stream": True, "messages": user("echo x")}).text)
    chunks = [json.loads(d) for d in data[:-1]]
    assert all("usage" not in c for c in chunks) and all(c["choices"] for c in chunks)


def test_llmos_deltas_stream_and_add_up_to_the_message_field(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="calc",
        messages=user("llmos"),  # type: ignore[arg-type]
        stream=True,
    )
    text, llmos = "", dict[str, list[object]]()
    for chunk in stream:
        delta = chunk.choices[0].delta  # type: ignore[union-attr]
        text += delta.content or ""
        for kind, records in (getattr(delta, "llmos", None) or {}).items():
            llmos.setdefault(kind, []).extend(records)
    assert text == "48*27 = 1296"
    assert llmos == {
        "states": [{"type": "state", "state": "code", "trigger": "[CODE]"}],
        "actions": [ACTION],
    }


def test_a_streamed_tool_call_is_index_id_name_then_argument_pieces(server: Running) -> None:
    body = {"model": "tiny", "stream": True, "tools": TOOLS, "messages": user("tool")}
    chunks = [json.loads(d) for d in sse(chat(server, body).text)[:-1]]
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0] == {
        "index": 0,
        "id": "call_0",
        "type": "function",
        "function": {"name": "calculate", "arguments": ""},
    }
    pieces = calls[1:]
    assert len(pieces) > 1 and all(set(p) == {"index", "function"} for p in pieces)
    arguments = "".join(p["function"]["arguments"] for p in pieces)
    assert json.loads(arguments) == {"expression": "48*27 " * 10}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_the_sdk_accumulates_a_streamed_tool_call(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="tiny",
        messages=user("tool"),  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
    ) as stream:
        done = stream.get_final_completion()
    (call,) = done.choices[0].message.tool_calls or []
    assert call.function.name == "calculate"
    assert json.loads(call.function.arguments) == {"expression": "48*27 " * 10}


def test_a_streamed_completion(server: Running) -> None:
    body = {"model": "tiny", "prompt": "echo p q", "stream": True}
    answer = httpx.post(server.url + "/v1/completions", json=body, timeout=60)
    chunks = [json.loads(d) for d in sse(answer.text)[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert [(c["choices"][0]["text"], c["choices"][0]["finish_reason"]) for c in chunks] == [
        ("p", None),
        (" q", None),
        ("", "stop"),
    ]


def test_a_failure_mid_stream_is_an_error_chunk(client: openai.OpenAI, server: Running) -> None:
    data = sse(chat(server, {"model": "calc", "stream": True, "messages": user("fail 503")}).text)
    assert json.loads(data[-1]) == {
        "error": {
            "message": "scripted failure 503",
            "type": "server_error",
            "param": None,
            "code": "scripted",
        }
    }
    assert "[DONE]" not in data
    with pytest.raises(openai.APIError, match="scripted failure 503"):
        for _ in client.chat.completions.create(
            model="calc",
            messages=user("fail 503"),  # type: ignore[arg-type]
            stream=True,
        ):
            pass


def test_a_failure_without_streaming_has_its_status(server: Running) -> None:
    answer = chat(server, {"model": "calc", "messages": user("fail 504")})
    assert answer.status_code == 504
    assert answer.json()["error"]["message"] == "scripted failure 504"


def test_events_that_end_without_a_result_are_a_500(server: Running) -> None:
    answer = chat(server, {"model": "calc", "messages": user("nodone")})
    assert answer.status_code == 500
    assert answer.json()["error"]["type"] == "server_error"
    streamed = sse(chat(server, {"model": "calc", "stream": True, "messages": user("nodone")}).text)
    assert json.loads(streamed[-1])["error"]["message"] == "the request ended without a result"


def test_health(server: Running) -> None:
    answer = httpx.get(server.url + "/health", timeout=60)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_metrics_count_requests_tokens_actions_and_latency(server: Running) -> None:
    chat(server, {"model": "calc", "messages": user("llmos")})
    httpx.get(server.url + "/nowhere", timeout=60)
    text = httpx.get(server.url + "/metrics", timeout=60).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    assert samples['llmos_requests_total{route="/v1/chat/completions",status="200"}'] >= 1
    assert samples['llmos_requests_total{route="other",status="404"}'] >= 1
    assert samples['llmos_actions_total{status="ok"}'] >= 1
    assert samples["llmos_time_to_first_token_seconds_count"] >= 1
    assert samples["llmos_time_per_output_token_seconds_count"] >= 1
    assert samples["llmos_completion_tokens_total"] >= 3
    for gauge in ("queue_depth", "running_rows", "tokens_per_second", "kv_cache_reuse_ratio"):
        assert f"llmos_{gauge}" in samples
    assert not any(name.endswith("_created") for name in samples)
