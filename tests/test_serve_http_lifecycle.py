"""`llmos serve` over time: a client that goes away cancels its request at once, a full
queue answers 429, SIGTERM and Ctrl-C drain (503 for new requests, running ones finish,
the rest are cancelled after the grace period, exit 0), a second signal stops at once."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest

from tests.serve_http_support import Running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("serve"))
    yield running
    running.stop()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[list[Running]]:
    """Servers a test starts for itself (and signals); killed if still there at the end."""
    started: list[Running] = []
    yield started
    for running in started:
        running.stop()


def body(script: str, stream: bool = False) -> dict[str, object]:
    return {"model": "calc", "stream": stream, "messages": [{"role": "user", "content": script}]}


def ticket_of(server: Running, script: str) -> int:
    number = server.wait_for("submit", script=script)["ticket"]
    assert isinstance(number, int)
    return number


class Streaming(threading.Thread):
    """A streamed request read to its end in the background; its data lines."""

    def __init__(self, server: Running, script: str) -> None:
        super().__init__(daemon=True)
        self.server, self.script = server, script
        self.data: list[str] = []
        self.status: int | None = None
        self.start()

    def run(self) -> None:
        url = self.server.url + "/v1/chat/completions"
        with httpx.stream("POST", url, json=body(self.script, stream=True), timeout=120) as answer:
            self.status = answer.status_code
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    self.data.append(line.removeprefix("data: "))

    def text(self) -> str:
        chunks = [json.loads(d) for d in self.data if d != "[DONE]"]
        return "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
        )


def until(condition: object, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {deadline_s} s")


# ---- a client that goes away -----------------------------------------------------------


def test_a_client_leaving_mid_stream_cancels_its_request_at_once(server: Running) -> None:
    url = server.url + "/v1/chat/completions"
    with httpx.stream("POST", url, json=body("slow 100", stream=True), timeout=60) as answer:
        for line in answer.iter_lines():
            if '"content":"w0"' in line:
                break
        left = time.monotonic()
    number = ticket_of(server, "slow 100")
    server.wait_for("cancel", deadline_s=10, ticket=number)
    assert time.monotonic() - left < 5  # at once, not when the 20 s request would end
    assert not [r for r in server.records() if r["event"] == "finish" and r["ticket"] == number]
    text = httpx.get(server.url + "/metrics", timeout=60).text
    assert 'llmos_requests_total{route="/v1/chat/completions",status="499"}' in text


def test_a_client_leaving_before_any_output_cancels_its_stream(server: Running) -> None:
    sock = _send_raw(server, body("hang", stream=True))
    number = ticket_of(server, "hang")
    sock.close()
    server.wait_for("cancel", deadline_s=10, ticket=number)


def test_a_plain_request_stopped_by_the_drain_is_a_503(
    fresh: list[Running], tmp_path: Path
) -> None:
    server = Running(tmp_path, "--grace", "1")
    fresh.append(server)
    answers: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            httpx.post(server.url + "/v1/chat/completions", json=body("hang"), timeout=60)
        )
    )
    waiting.start()
    ticket_of(server, "hang")
    server.signal(signal.SIGTERM)
    waiting.join(timeout=60)
    assert answers[0].status_code == 503
    assert answers[0].json()["error"]["code"] == "shutdown"
    assert server.wait(deadline_s=60) == 0


def test_a_client_leaving_a_plain_request_cancels_it(server: Running) -> None:
    sock = _send_raw(server, body("hang 2"))
    number = ticket_of(server, "hang 2")
    sock.close()
    server.wait_for("cancel", deadline_s=10, ticket=number)
    assert (
        httpx.post(server.url + "/v1/chat/completions", json=body("echo ok"), timeout=60).json()[
            "choices"
        ][0]["message"]["content"]
        == "ok"
    )


def _send_raw(server: Running, payload: dict[str, object]) -> socket.socket:
    where = urlsplit(server.url)
    assert where.hostname and where.port
    sock = socket.create_connection((where.hostname, where.port), timeout=30)
    data = json.dumps(payload).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


# ---- 429 -------------------------------------------------------------------------------


def test_a_full_queue_is_a_429_with_retry_after(fresh: list[Running], tmp_path: Path) -> None:
    server = Running(tmp_path, "--max-queue", "1")
    fresh.append(server)
    sock = _send_raw(server, body("hang", stream=True))
    number = ticket_of(server, "hang")
    answer = httpx.post(server.url + "/v1/chat/completions", json=body("echo x"), timeout=60)
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "2"
    assert answer.json()["error"]["type"] == "rate_limit_error"
    assert answer.json()["error"]["code"] == "queue_full"
    sock.close()
    server.wait_for("cancel", ticket=number)
    until(
        lambda: (
            httpx.post(
                server.url + "/v1/chat/completions", json=body("echo x"), timeout=60
            ).status_code
            == 200
        ),
        30,
        "a request after the queue emptied",
    )


# ---- drain -----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_then_exits_0(fresh: list[Running], tmp_path: Path, signum: int) -> None:
    server = Running(tmp_path, "--grace", "60")
    fresh.append(server)
    running = Streaming(server, "slow 10")  # 2 s
    ticket_of(server, "slow 10")
    server.signal(signum)
    server.wait_for("drain")
    refused = httpx.post(server.url + "/v1/chat/completions", json=body("echo late"), timeout=60)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "draining"
    assert httpx.get(server.url + "/health", timeout=60).status_code == 503
    assert server.wait(deadline_s=60) == 0
    running.join(timeout=60)
    assert running.status == 200 and running.data[-1] == "[DONE]"
    assert running.text() == " ".join(f"w{i}" for i in range(10))  # finished, not cut
    events = [r["event"] for r in server.records()]
    assert events.index("drain") < events.index("finish") < events.index("close")
    assert "cancel" not in events
    assert "draining, 1 request(s) running" in server.out.read_text()


def test_after_the_grace_period_the_rest_are_cancelled(
    fresh: list[Running], tmp_path: Path
) -> None:
    server = Running(tmp_path, "--grace", "1")
    fresh.append(server)
    running = Streaming(server, "hang")
    number = ticket_of(server, "hang")
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait(deadline_s=60) == 0
    assert time.monotonic() - started < 30
    server.wait_for("cancel", ticket=number, deadline_s=1)
    running.join(timeout=30)
    assert not running.is_alive() and running.status == 200
    assert json.loads(running.data[-1])["error"]["code"] == "shutdown"  # a clean end
    assert "cancelling 1 request(s) still running" in server.out.read_text()


def test_a_second_signal_stops_at_once(fresh: list[Running], tmp_path: Path) -> None:
    server = Running(tmp_path, "--grace", "600")
    fresh.append(server)
    running = Streaming(server, "hang")
    number = ticket_of(server, "hang")
    server.signal(signal.SIGTERM)
    server.wait_for("drain")
    started = time.monotonic()
    server.signal(signal.SIGINT)
    assert server.wait(deadline_s=60) == 0
    assert time.monotonic() - started < 30  # not the 600 s grace
    server.wait_for("cancel", ticket=number, deadline_s=1)
    server.wait_for("close", deadline_s=1)
    running.join(timeout=30)
    assert json.loads(running.data[-1])["error"]["code"] == "shutdown"


def test_an_idle_server_exits_0_on_sigterm(fresh: list[Running], tmp_path: Path) -> None:
    server = Running(tmp_path)
    fresh.append(server)
    server.signal(signal.SIGTERM)
    assert server.wait(deadline_s=60) == 0
    assert [r["event"] for r in server.records()] == ["drain", "close"]
