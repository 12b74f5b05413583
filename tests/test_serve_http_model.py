"""`llmos serve` end to end on the real default model: the calculator spec's action runs in
the sandbox inside the decode, and the reply, streamed or not, carries its output."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionUserMessageParam

from tests.serve_http_support import Running

pytestmark = pytest.mark.model

SERVE = ("-m", "llmos_grammar.cli.main", "serve", "examples/calculator/spec.yaml")
QUESTION: list[ChatCompletionUserMessageParam] = [{"role": "user", "content": "What is 48*27?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("serve"), "--engine", "transformers", command=SERVE)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="-", max_retries=0, timeout=900)


def test_the_models_are_the_spec_and_its_base_model(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert "calculator" in models and len(models) == 2
    assert models["calculator"].llmos["spec"] is True  # type: ignore[attr-defined]


def test_the_reply_contains_the_injected_output(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="calculator", messages=QUESTION)
    message = reply.choices[0].message
    (action,) = message.llmos["actions"]  # type: ignore[attr-defined]
    assert action["action"] == "python" and action["status"] == "exit 0"
    assert action["output"] == "1296\n"  # what the sandboxed program printed
    assert "[OUTPUT]\n1296\n[/OUTPUT]" in (message.content or "")
    assert "1296" in (message.content or "").split("[/OUTPUT]", 1)[1]  # the model read it
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_a_stream_carries_llmos_deltas_and_the_same_text(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="calculator",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, records, usage = "", dict[str, list[dict[str, object]]](), None
    for chunk in stream:
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for kind, items in (getattr(delta, "llmos", None) or {}).items():
            records.setdefault(kind, []).extend(items)
    assert [a["output"] for a in records["actions"]] == ["1296\n"]
    assert [s["state"] for s in records["states"]][:1] == ["run"]
    assert "[OUTPUT]\n1296\n[/OUTPUT]" in text
    assert usage is not None and usage.prompt_tokens > 0


def test_metrics_saw_the_actions(server: Running) -> None:
    import httpx2 as httpx

    text = httpx.get(server.url + "/metrics", timeout=60).text
    assert 'llmos_actions_total{status="ok"} 2.0' in text
    assert json.dumps("llmos_running_rows")[1:-1] in text


def test_sigterm_exits_0(server: Running) -> None:
    server.signal(signal.SIGTERM)
    assert server.wait(deadline_s=120) == 0
    assert "draining" in server.out.read_text()
