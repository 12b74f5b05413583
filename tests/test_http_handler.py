"""The http handler's own logic: URL checks, redirects, one deadline, errors as results."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from llmos_grammar.actions.http import run_http
from llmos_grammar.actions.urls import BadUrl, allowed, parse_url
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult
from tests.hostile.cases import SECRET
from tests.hostile.cases_files_http import Sloppy, server_url


def policy(base: str, **values: object) -> ActionPolicy:
    return ActionPolicy(
        name="http",
        handler="http",
        network=True,
        urls=(f"{base}/api",),
        **values,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://h/api/../secret", "dot segment"),
        ("http://h/api/./x", "dot segment"),
        ("http://h/api/%2e%2e/x", "dot segment"),
        ("http://h/api/%2E%2e/x", "dot segment"),
        ("http://h/api/.%2e/x", "dot segment"),
        ("http://h/api/..;a=b/x", "dot segment"),
        ("http://h/api/%ef%bc%8e%ef%bc%8e/x", "dot segment"),  # full-width dots
        ("http://h/api/..%2fx", "encodes '/'"),
        ("http://h/api/%5c..", "encodes '/'"),
        ("http://h/api/%00x", "control character"),
        ("http://h/api/%ef%bc%8f", "reads as '/'"),  # a full-width solidus
        ("http://h/api//x", "empty segment"),
        ("http://h/api\\..\\x", "backslash"),
        ("http://h/api/%252e%252e/x", "encoded twice"),
        ("http://h/api/%zz", "starts no escape"),
        ("http://h/api/%c0%ae%c0%ae", "not UTF-8"),
        ("http://h/api/;x", "parameters only"),
        ("http://user@h/api", "user names and passwords"),
        ("http://u:p@h/api", "user names and passwords"),
        ("http://h:abc/api", "port 'abc'"),
        ("http://h:99999/api", "port '99999'"),
        ("http://h:0/api", "port '0'"),
        ("http://h:-1/api", "port '-1'"),
        ("http://h:80:80/api", "more than one ':'"),
        ("http://::1/api", "more than one ':'"),
        ("http://[::1%25eth0]/api", "zone ids"),
        ("http://[zz]/api", "IPv6"),
        ("http://[::1/api", "cannot be parsed"),
        ("http://[::1]x/api", "not a valid [IPv6] literal"),
        ("http:///api", "no host"),
        ("http://a..b/api", "not a valid name"),
        ("http://-a.b/api", "not a valid name"),
        ("http://" + "a" * 64 + ".com/api", "not a valid name"),
        ("http://h\u00e9/api", "non-ASCII"),
        ("http://h/api/\x1b[2J", "control character"),
        ("http://h/a" + "x" * 9000, "longer than"),
        ("ftp://h/api", "scheme must be http or https"),
        ("//h/api", "scheme must be http or https"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(BadUrl) as caught:
        parse_url(url)
    assert reason in str(caught.value), caught.value
    result = run_http(f"GET {url}", ActionPolicy(name="h", handler="http", network=True))
    assert result.refused is not None and not result.ok


def test_good_urls_parse_to_what_is_sent() -> None:
    target = parse_url("HTTP://Example.COM:/api/a%20b;v=1/?q=1&r=../x#frag")
    assert target.origin == ("http", "example.com", 80)
    assert target.request_target == "/api/a%20b;v=1/?q=1&r=../x"
    assert target.segments == ("api", "a b;v=1")
    assert parse_url("https://[0:0::1]:8443").url == "https://[::1]:8443/"
    assert parse_url("http://ex_ample.com/").host == "ex_ample.com"


def test_allow_list_compares_origin_and_whole_segments() -> None:
    allow = ("http://h/api",)
    for url in [
        "http://h/api",
        "http://h/api/",
        "http://h:80/api/x",
        "http://h/api?x=/..",
        "http://h/ap%69/x",
    ]:
        assert allowed(url, allow), url
    for url in [
        "http://h/apix",
        "http://h/API/x",
        "http://h/",
        "https://h/api",
        "http://h:81/api",
        "http://h.evil/api",
    ]:
        assert not allowed(url, allow), url
    assert allowed("http://[::1]:8080/api/x", ("http://[0:0::1]:8080/api/",))
    assert allowed("http://h/anything", ("http://h",))
    assert not allowed(
        "http://h/api", ("http://h:abc/api", "not a url")
    )  # bad entries allow nothing


@pytest.mark.parametrize(
    "path",
    [
        "/api/../secret.txt",
        "/api/%2e%2e/secret.txt",
        "/api/%2E%2E/secret.txt",
        "/api/..%2fsecret.txt",
        "/api/..%5csecret.txt",
        "/api/..\\secret.txt",
        "/api/..;/secret.txt",
        "/api/%252e%252e/secret.txt",
        "/api//../secret.txt",
    ],
)
def test_escapes_never_reach_the_server(path: str) -> None:
    base = server_url()
    result = run_http(f"GET {base}{path}", policy(base))
    assert result.refused is not None and SECRET not in result.stdout, result
    assert path not in Sloppy.seen


def test_the_careless_server_would_serve_the_secret() -> None:
    """The escapes above are real: sent to the server, /api/%2e%2e/secret.txt is the secret."""
    import http.client

    target = parse_url(server_url())
    conn = http.client.HTTPConnection(target.host, target.port, timeout=5)
    try:
        conn.request("GET", "/api/%2e%2e/secret.txt")
        assert conn.getresponse().read().decode() == SECRET
    finally:
        conn.close()


def test_requests_under_the_prefix_work() -> None:
    base = server_url()
    result = run_http(f"GET {base}/api/items?q=1", policy(base))
    assert result.ok and result.stdout == "api: /api/items", result
    missing = run_http(f"GET {base}/api/../nothing", policy(base))
    assert missing.refused is not None


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ("port-abc", "port 'abc'"),
        ("port-big", "port '99999'"),
        ("dotdot", "dot segment"),
        ("relative", "not on the allow-list"),
    ],
)
def test_redirects_are_checked_like_requests(route: str, reason: str) -> None:
    base = server_url()
    result = run_http(f"GET {base}/api/redirect/{route}", policy(base))
    assert result.refused is not None and reason in result.refused, result
    assert result.refused.startswith("redirect (302) refused"), result.refused
    assert SECRET not in result.stdout


def test_redirects_inside_are_followed_and_loops_end() -> None:
    base = server_url()
    landed = run_http(f"GET {base}/api/redirect/inside", policy(base))
    assert landed.ok and landed.stdout == "api: /api/redirect/landed", landed
    loop = run_http(f"GET {base}/api/redirect/loop", policy(base))
    assert not loop.ok and "more than 5 redirects" in loop.stderr, loop


@pytest.mark.parametrize(
    ("route", "timeout"), [("drip", 1.5), ("drip-body", 1.5), ("drip-slow", 3.0)]
)
def test_one_deadline_for_the_whole_request(route: str, timeout: float) -> None:
    """A server that sends a byte every 0.25 s (0.7 s) cannot hold the action past timeout_s."""
    base = server_url()
    start = time.monotonic()
    result = run_http(f"GET {base}/api/{route}", policy(base, timeout_s=timeout))
    took = time.monotonic() - start
    assert result.timed_out and result.limit_hit == "timeout" and not result.ok, result
    assert timeout - 0.05 <= took < timeout + 0.5, took
    assert "no complete response within" in result.stderr
    if route == "drip-body":
        assert "reading the body" in result.stderr and set(result.stdout) == {"x"}
    else:
        assert "status line and headers" in result.stderr


@pytest.fixture()
def silent() -> Iterator[int]:
    """A port whose listener accepts connections (backlog) but never answers."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


def test_a_server_that_never_answers_times_out(silent: int) -> None:
    base = f"http://127.0.0.1:{silent}"
    result = run_http(f"GET {base}/api/x", policy(base, timeout_s=1.0))
    assert result.timed_out and result.duration_s < 1.5, result


def _serve_raw(reply: bytes) -> str:
    """A server that answers every connection with `reply` (after reading the request)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize(
    "reply",
    [
        b"HELLO\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"",
    ],
)
def test_bad_responses_are_results(reply: bytes) -> None:
    base = _serve_raw(reply)
    result = run_http(f"GET {base}/api/x", policy(base, timeout_s=3.0))
    assert isinstance(result, ActionResult) and not result.ok and not result.timed_out, result
    assert result.stderr.startswith("http: "), result


def test_connection_errors_are_results() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    result = run_http(f"GET {base}/api/x", policy(base))
    assert not result.ok and "refused" in result.stderr and result.exit_code == 1, result


@pytest.mark.parametrize("text", ["", "GET", "GET a b", "GET http://[", "PUT http://h/api", "\n\n"])
def test_bad_commands_are_refused(text: str) -> None:
    result = run_http(text, policy("http://h"))
    assert result.refused is not None, result


def test_deep_json_is_returned_as_it_is() -> None:
    base = server_url()
    ap = policy(base, output_bytes=100, json_fields=("a.b",))
    result = run_http(f"GET {base}/api/deep", ap)
    assert result.ok and result.stdout == "[" * 100 and result.truncated, result


def test_ipv6_literal_hosts() -> None:
    try:
        base = server_url("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    result = run_http(f"GET {base}/api/six", policy(base))
    assert result.ok and result.stdout == "api: /api/six", result
