"""Every refusal of `llmos serve` in OpenAI's error shape with its status, on a real server
with an API key: 400 (located), 401, 404, 405, 413, 500 without a traceback; bad input of
every kind, after which the server keeps serving."""

from __future__ import annotations

import gzip
import json
import re
import socket
from collections.abc import Iterator

import httpx2 as httpx
import openai
import pytest

from tests.serve_http_support import Running

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
GOOD = {"model": "calc", "messages": [{"role": "user", "content": "echo still here"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("serve"), "--api-key", KEY)
    yield running
    running.stop()


def post(
    server: Running,
    content: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
) -> httpx.Response:
    sent = {**AUTH, "Content-Type": "application/json", **(headers or {})}
    return httpx.post(server.url + path, content=content, headers=sent, timeout=60)


def error_of(answer: httpx.Response, status: int) -> dict[str, object]:
    """The error object of an answer in OpenAI's shape, with exactly its four fields."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in answer.text
    return error


def still_serving(server: Running) -> None:
    answer = post(server, json.dumps(GOOD).encode())
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "still here"
    assert server.process.poll() is None


# ---- 401 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {KEY}x"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": KEY},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer " + KEY[:-1]},
    ],
)
def test_a_missing_or_wrong_key_is_a_401(server: Running, headers: dict[str, str]) -> None:
    answer = httpx.post(server.url + "/v1/chat/completions", json=GOOD, headers=headers, timeout=60)
    error = error_of(answer, 401)
    assert error["code"] == "invalid_api_key"
    assert answer.headers["www-authenticate"] == "Bearer"
    for path in ("/v1/models", "/metrics"):
        assert httpx.get(server.url + path, headers=headers, timeout=60).status_code == 401


def test_the_key_is_checked_before_the_body_is_read(server: Running) -> None:
    answer = httpx.post(
        server.url + "/v1/chat/completions",
        content=b"x" * (9 * 1024 * 1024),
        headers={"Authorization": "Bearer wrong", "Content-Type": "application/json"},
        timeout=60,
    )
    error_of(answer, 401)


def test_the_sdk_with_a_wrong_key_gets_an_authentication_error(server: Running) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    good = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    assert [m.id for m in good.models.list().data] == ["calc", "tiny"]


def test_health_needs_no_key(server: Running) -> None:
    assert httpx.get(server.url + "/health", timeout=60).status_code == 200
    assert httpx.get(server.url + "/metrics", headers=AUTH, timeout=60).status_code == 200


# ---- 400: the body ---------------------------------------------------------------------

BAD_BODIES = {
    "truncated JSON": (b'{"model": "calc", "messages": [', "not valid JSON"),
    "trailing garbage": (b'{"model": "calc"} x', "not valid JSON"),
    "single quotes": (b"{'model': 'calc'}", "not valid JSON"),
    "empty": (b"", "the body is empty"),
    "whitespace": (b"  \n ", "the body is empty"),
    "an array": (b"[1, 2]", "must be a JSON object, not an array"),
    "a string": (b'"hello"', "must be a JSON object, not a string"),
    "null": (b"null", "must be a JSON object, not null"),
    "NaN": (b'{"model": "calc", "temperature": NaN}', "NaN is not a JSON number"),
    "Infinity": (b'{"temperature": -Infinity}', "-Infinity is not a JSON number"),
    "invalid UTF-8": (b'{"model": "calc\xff\xfe"}', "not valid UTF-8 (byte 15)"),
    "overlong UTF-8": (b'{"model": "\xc0\xaf"}', "not valid UTF-8"),
    "a UTF-16 body": ('{"model": "calc"}'.encode("utf-16"), "not valid UTF-8"),
    "a BOM": (b'\xef\xbb\xbf{"model": "calc"}', "not valid JSON"),
    "a lone surrogate": (b'{"model": "calc", "x": "\\ud800"}', "unpaired surrogate"),
    "deep nesting": (b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "nests too deeply"),
    "a huge number": (b'{"n": ' + b"9" * 5000 + b"}", "not valid JSON"),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_a_bad_body_is_a_located_400(server: Running, name: str) -> None:
    content, expected = BAD_BODIES[name]
    error = error_of(post(server, content), 400)
    assert expected in str(error["message"])
    assert error["type"] == "invalid_request_error"
    still_serving(server)


def test_invalid_json_says_where(server: Running) -> None:
    error = error_of(post(server, b'{\n  "model": "calc",\n  "n": 1,,\n}'), 400)
    assert "(line 3, column 10)" in str(error["message"])


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-www-form-urlencoded", "Content-Type 'application/x-www-form-urlencoded'"),
        ("text/plain", "Content-Type 'text/plain'"),
        ("multipart/form-data; boundary=x", "Content-Type 'multipart/form-data'"),
        ("application/json; charset=latin-1", "charset 'latin-1'"),
    ],
)
def test_a_wrong_content_type_is_a_400(server: Running, content_type: str, expected: str) -> None:
    answer = post(server, json.dumps(GOOD).encode(), {"Content-Type": content_type})
    error = error_of(answer, 400)
    assert expected in str(error["message"]) and error["code"] == "unsupported_content_type"


def test_json_content_types_are_accepted(server: Running) -> None:
    for content_type in (
        "application/json; charset=UTF-8",
        "APPLICATION/JSON",
        "application/vnd.x+json",
    ):
        answer = post(server, json.dumps(GOOD).encode(), {"Content-Type": content_type})
        assert answer.status_code == 200, (content_type, answer.text)


def test_a_compressed_body_is_refused(server: Running) -> None:
    answer = post(server, gzip.compress(json.dumps(GOOD).encode()), {"Content-Encoding": "gzip"})
    assert "Content-Encoding 'gzip'" in str(error_of(answer, 400)["message"])


# ---- 400: the request's fields (the protocol's checks, located) -------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "calc", "messages": []}, "messages"),
        ({"model": "calc", "messages": "hello"}, "messages"),
        ({"model": "calc", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "calc"}, "messages"),
        ({**GOOD, "messages": [{"role": "user"}]}, "messages[0].content"),
        ({**GOOD, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({**GOOD, "messages": [{"role": "user", "content": "x" * 300_000}]}, "messages[0].content"),
        ({**GOOD, "temperature": "hot"}, "temperature"),
        ({**GOOD, "n": 0}, "n"),
        ({**GOOD, "stream": "yes"}, "stream"),
        ({**GOOD, "frobnicate": True}, "frobnicate"),
        ({**GOOD, "max_tokens": 100_000}, "max_tokens"),  # over the model's 256
        ({**GOOD, "session": "../etc"}, "session"),
        (
            {
                **GOOD,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": {"type": "strin"}},
                },
            },
            "response_format.json_schema",
        ),
        (
            {
                **GOOD,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": {"type": "array", "uniqueItems": True}},
                },
            },
            "response_format.json_schema",
        ),
        (
            {
                **GOOD,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {
                                "type": "object",
                                "properties": {"a": {"type": "string", "pattern": "(("}},
                            },
                        },
                    }
                ],
            },
            "tools[0].function.parameters",
        ),
    ],
)
def test_a_wrong_field_is_a_400_naming_it(
    server: Running, body: dict[str, object], param: str
) -> None:
    error = error_of(post(server, json.dumps(body).encode()), 400)
    assert error["param"] == param
    still_serving(server)


# ---- 404, 405, 413, 500 ----------------------------------------------------------------


def test_an_unknown_model_is_a_404(server: Running) -> None:
    body = {**GOOD, "model": "gpt-4o"}
    error = error_of(post(server, json.dumps(body).encode()), 404)
    assert error["param"] == "model" and "gpt-4o" in str(error["message"])


@pytest.mark.parametrize("path", ["/", "/v1", "/v2/chat/completions", "/docs", "/openapi.json"])
def test_an_unknown_route_is_a_404_in_openais_shape(server: Running, path: str) -> None:
    error = error_of(httpx.get(server.url + path, headers=AUTH, timeout=60), 404)
    assert path in str(error["message"])


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/chat/completions"), ("PUT", "/v1/completions"), ("POST", "/v1/models")],
)
def test_a_wrong_method_is_a_405_in_openais_shape(server: Running, method: str, path: str) -> None:
    answer = httpx.request(method, server.url + path, headers=AUTH, timeout=60)
    error = error_of(answer, 405)
    assert f"{method} {path} is not allowed" in str(error["message"])


def test_a_10_mb_string_is_a_413(server: Running) -> None:
    body = {"model": "calc", "messages": [{"role": "user", "content": "x" * 10_000_000}]}
    error = error_of(post(server, json.dumps(body).encode()), 413)
    assert error["code"] == "body_too_large"
    still_serving(server)


def test_a_chunked_body_is_measured_while_it_is_read(server: Running) -> None:
    """Past the limit the server answers 413 without waiting for the end of the body."""
    head = b'{"model": "calc", "messages": [{"role": "user", "content": "'
    piece = b"x" * (64 * 1024)
    chunks = [head, *[piece] * (8 * 16 + 1)]  # 8 MiB and a bit, and never the last chunk
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    answer = raw_http(server, b"Transfer-Encoding: chunked\r\n", body)
    assert answer.startswith("HTTP/1.1 413"), answer
    still_serving(server)


def raw_http(server: Running, headers: bytes, body: bytes) -> str:
    """Send a POST to /v1/chat/completions by hand; the start of the answer."""
    from urllib.parse import urlsplit

    where = urlsplit(server.url)
    assert where.hostname and where.port
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {KEY}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + headers
            + b"\r\n"
            + body
        )
        return read_answer(sock)


def read_answer(sock: socket.socket) -> str:
    """Read one HTTP answer: its head, then as many body bytes as it declares.

    The head and the body may come in separate segments, so one recv is not enough.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode()
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    declared = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    wanted = int(declared.group(1)) if declared else 0
    while len(body) < wanted:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def test_a_declared_length_over_the_limit_is_refused_before_reading(server: Running) -> None:
    answer = raw_http(server, b"Content-Length: 999999999\r\n", b"{")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"code":"body_too_large"' in answer


def test_a_scheduler_bug_is_a_500_without_details(server: Running) -> None:
    body = {"model": "calc", "messages": [{"role": "user", "content": "crash"}]}
    answer = post(server, json.dumps(body).encode())
    error = error_of(answer, 500)
    assert error["type"] == "server_error"
    assert "secret internal detail" not in answer.text
    still_serving(server)
