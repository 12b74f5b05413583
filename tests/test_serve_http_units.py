"""The parts of `llmos serve`'s HTTP layer on their own: the key check, the loopback rule and
the command line's refusals, lazy imports, the chunk builder, the drain gate, the token rate."""

from __future__ import annotations

import argparse
import asyncio
import hmac
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from llmos_grammar.cli.serve import add_arguments, option_problem
from llmos_grammar.serve.http_auth import check_key, is_loopback
from llmos_grammar.serve.http_errors import Unauthorized
from llmos_grammar.serve.types import (
    ChoiceDone,
    RequestDone,
    ServeEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

SERVER_MODULES = ("fastapi", "starlette", "uvicorn", "sse_starlette", "prometheus_client")


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["spec.yaml", *argv])


# ---- the key -----------------------------------------------------------------------------


def test_the_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    check_key("Bearer k3y", "k3y")
    with pytest.raises(Unauthorized):
        check_key("Bearer k3x", "k3y")
    assert compared == [(b"k3y", b"k3y"), (b"k3x", b"k3y")]


def test_no_key_lets_anyone_in_and_a_key_needs_bearer() -> None:
    check_key(None, None)
    check_key("Bearer anything", None)
    check_key("bearer  k ", "k")  # the scheme in any case, spaces around the token
    for header in (None, "", "k", "Basic k", "Bearer", "Bearer k k"):
        with pytest.raises(Unauthorized):
            check_key(header, "k")


def test_a_non_ascii_key_compares_as_utf8_bytes() -> None:
    key = "clé"
    check_key("Bearer " + key.encode("utf-8").decode("latin-1"), key)  # as Starlette reads it
    with pytest.raises(Unauthorized):
        check_key("Bearer cl\xe9", key)  # latin-1 é is not UTF-8 é


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# ---- the command line's refusals -----------------------------------------------------------


def test_a_public_host_without_a_key_is_refused() -> None:
    problem = option_problem(options("--host", "0.0.0.0"), None)
    assert problem is not None and "--host 0.0.0.0 is reachable from other machines" in problem
    assert "--api-key" in problem and "--insecure" in problem
    assert option_problem(options("--host", "0.0.0.0", "--insecure"), None) is None
    assert option_problem(options("--host", "0.0.0.0"), "key") is None
    assert option_problem(options(), None) is None  # 127.0.0.1 by default


@pytest.mark.parametrize(
    ("argv", "key", "expected"),
    [
        ((), "  ", "the API key is empty"),
        (("--port", "70000"), None, "--port 70000 is not a port"),
        (("--batch", "0"), None, "--batch must be at least 1"),
        (("--max-queue", "0"), None, "--max-queue must be at least 1"),
        (("--session-ttl", "0"), None, "--session-ttl must be above 0"),
        (("--grace", "-1"), None, "--grace must be above 0"),
        (("--max-body-mb", "0"), None, "--max-body-mb must be above 0"),
    ],
)
def test_bad_options_are_refused(argv: tuple[str, ...], key: str | None, expected: str) -> None:
    problem = option_problem(options(*argv), key)
    assert problem is not None and expected in problem


def test_llmos_serve_refuses_a_public_host_without_a_key_and_starts_nothing() -> None:
    code = (
        "import sys; from llmos_grammar.cli.main import main; "
        "rc = main(['serve', 'examples/calculator/spec.yaml', '--host', '0.0.0.0']); "
        f"loaded = [m for m in {SERVER_MODULES!r} if m in sys.modules]; "
        "print(loaded); sys.exit(rc)"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}  # no LLMOS_API_KEY
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 2, done.stderr
    assert "reachable from other machines" in done.stderr
    assert done.stdout.strip() == "[]"


def test_llmos_help_and_check_never_import_the_server() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from llmos_grammar.cli.main import main, build_parser\n"
        "build_parser(); build_parser('check')\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['serve', '--help'])\n"
        f"print([m for m in {SERVER_MODULES!r} + ('torch',) if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# ---- chunks --------------------------------------------------------------------------------


def test_a_choice_end_streams_what_its_deltas_left_out() -> None:
    from llmos_grammar.serve.http_chunks import Chunks
    from llmos_grammar.serve.http_shape import Head

    chunks = Chunks(Head("chat", "chatcmpl-1", 0, "m"), n=1, include_usage=False)
    call = ToolCall("call_1", "f", '{"a": 1}')
    assert [c["choices"][0]["delta"] for c in chunks.event(TextDelta(0, "ab"))] == [  # type: ignore[index]
        {"content": "ab"}
    ]
    done = chunks.event(ChoiceDone(0, "tool_calls", "abc", tool_calls=(call,)))
    deltas = [c["choices"][0]["delta"] for c in done]  # type: ignore[index]
    assert deltas[0] == {"content": "c"}
    assert deltas[1]["tool_calls"][0]["id"] == "call_1"
    assert deltas[2] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]}
    assert deltas[-1] == {} and done[-1]["choices"][0]["finish_reason"] == "tool_calls"  # type: ignore[index]


def test_a_streamed_tool_call_is_not_sent_twice() -> None:
    from llmos_grammar.serve.http_chunks import Chunks
    from llmos_grammar.serve.http_shape import Head

    chunks = Chunks(Head("chat", "chatcmpl-1", 0, "m"), n=1, include_usage=True)
    call = ToolCall("call_1", "f", "{}")
    assert len(chunks.event(ToolCallDelta(0, 0, call))) == 2
    done = chunks.event(ChoiceDone(0, "tool_calls", "", tool_calls=(call,)))
    assert len(done) == 1 and done[0]["usage"] is None
    (last,) = chunks.closing(Usage(5, 2, 3))
    assert last["choices"] == [] and last["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 3},
    }


def test_llmos_records_are_grouped_by_kind() -> None:
    from llmos_grammar.serve.http_shape import llmos_json

    records: list[dict[str, object]] = [
        {"type": "state", "state": "a"},
        {"type": "action", "n": 1},
        {"type": "x"},
    ]
    assert llmos_json(records) == {
        "states": [records[0]],
        "actions": [records[1]],
        "events": [records[2]],
    }


# ---- the gate and the token rate -------------------------------------------------------------


class Ticket:
    def __init__(self) -> None:
        self.cancelled = 0

    async def events(self) -> AsyncIterator[ServeEvent]:
        yield TextDelta(0, "a")
        await asyncio.sleep(3600)
        yield RequestDone(Usage(1, 1, 0))

    def cancel(self) -> None:
        self.cancelled += 1


def test_a_stopped_request_ends_with_a_503_and_is_cancelled() -> None:
    from llmos_grammar.serve.http_gate import STOPPED, Gate

    async def scenario() -> tuple[list[ServeEvent], int, int]:
        gate, ticket = Gate(), Ticket()
        gate.add(ticket)
        seen: list[ServeEvent] = []

        async def read() -> None:
            async for event in gate.guard(ticket, ticket.events()):
                seen.append(event)

        reading = asyncio.ensure_future(read())
        while not seen:
            await asyncio.sleep(0.01)
        stopped = gate.stop_all()
        await asyncio.wait_for(reading, 10)
        return seen, stopped, ticket.cancelled

    seen, stopped, cancelled = asyncio.run(scenario())
    assert seen == [TextDelta(0, "a"), STOPPED] and STOPPED.status == 503
    assert stopped == 1 and cancelled == 1


def test_the_token_rate_covers_the_last_window() -> None:
    from llmos_grammar.serve.metrics import TokenRate

    rate = TokenRate(window_s=10)
    assert rate.rate() == 0.0
    rate.add(0.0, 0)
    rate.add(5.0, 500)
    assert rate.rate() == 100.0
    rate.add(20.0, 600)  # 0 s falls out: 5 s is the last sample at or before the window
    rate.add(25.0, 1100)
    assert rate.rate() == (1100 - 500) / (25 - 5)
    rate.add(40.0, 1100)  # nothing in the last 15 s
    assert rate.rate() == 0.0


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("exit 0", "ok"),
        ("exit 1", "failed"),
        ("exit 137", "failed"),
        ("refused: not approved (confirm: ask)", "refused"),
        ("timed out", "timed_out"),
        ("limit hit: memory", "limit_hit"),
        ("killed by signal 9", "killed"),
        ("anything else", "other"),
        (None, "other"),
    ],
)
def test_action_statuses_become_a_few_labels(status: object, label: str) -> None:
    from llmos_grammar.serve.metrics import action_label

    assert action_label(status) == label


# ---- the app in process: handlers of the framework's own errors; a port in use -------------


def asgi_call(app: object, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP request straight through the ASGI app: its status and body."""
    sent: list[dict[str, object]] = []
    received = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, object]:
        return received.pop(0) if received else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")  # type: ignore[misc]
    assert isinstance(status, int)
    return status, content


def test_fastapis_validation_error_is_a_400_in_openais_shape() -> None:
    import json

    from fastapi import Body

    from llmos_grammar.serve.app import build_app, protocol_options
    from tests.serve_http_support import FakeScheduler, Log

    scheduler = FakeScheduler(Log(None))
    app = build_app(scheduler, protocol_options(scheduler.models(), None))

    @app.post("/typed")
    async def typed(count: int = Body(..., embed=True)) -> dict[str, int]:  # noqa: B008
        return {"count": count}

    status, content = asgi_call(app, "POST", "/typed", b'{"count": "many"}')
    assert status == 400
    assert json.loads(content) == {
        "error": {
            "message": "the request to /typed is not valid",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_a_port_in_use_is_an_error_and_the_scheduler_is_closed() -> None:
    import socket

    from llmos_grammar.errors import LlmosError
    from llmos_grammar.serve.app import protocol_options
    from llmos_grammar.serve.server import Listen, serve
    from tests.serve_http_support import FakeScheduler, Log

    scheduler = FakeScheduler(Log(None))
    said: list[str] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LlmosError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve(
                scheduler,
                protocol_options(scheduler.models(), None),
                Listen("127.0.0.1", port, 1.0),
                said.append,
            )
    assert scheduler.closed and said == []
