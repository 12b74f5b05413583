"""The `http` handler: GET (and POST when the policy lists it) to allow-listed URLs only.

Command language: the first line is `GET URL` or `POST URL` (a bare URL means
GET); for POST the lines after the first are the body.

What is enforced, and how:
- Network is off unless the policy sets `network: true`; the method must be in
  `methods`.
- The URL is checked by `urls.parse_url`: http or https, no user name or
  password, a host that is a valid name or IP literal ([IPv6] in brackets, no
  zone id), a port from 1 to 65535, and a path whose meaning cannot depend on
  the server's decoding. A path with "." or ".." segments (also "%2e%2e",
  "..;x"), "//", a backslash, "%2f", "%5c", NUL or double encoding is refused,
  not rewritten: the path sent is exactly the path checked. It must then fall
  under one of `urls` (same scheme, host and port; whole decoded segments).
- Redirects (301, 302, 303, 307, 308; at most MAX_REDIRECTS) are resolved
  against the current URL and checked by the same rules before they are
  followed; a refused redirect refuses the action.
- One deadline, `timeout_s` from the start, covers name lookup, connect,
  headers, body and every redirect: the exchange runs on its own thread and
  its socket is shut down when the deadline passes, so a server that drips a
  byte at a time cannot hold the action longer.
- No proxy from the environment is used. The body is read incrementally and
  capped at `output_bytes` (`body_bytes` when `json_fields` is set).
- Every problem (bad URL, refused redirect, connection error, bad response)
  comes back as a result, never as an exception.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass

from llmos_grammar.action_policy import ActionPolicy
from llmos_grammar.actions.urls import BadUrl, Target, parse_url, permitted
from llmos_grammar.actions.urls import allowed as allowed
from llmos_grammar.results import ActionResult

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
HEADERS = {"User-Agent": "llmos-grammar", "Connection": "close"}


class HttpRefused(Exception):
    """The request is not allowed by the policy."""


@dataclass(frozen=True)
class Request:
    """One checked request: method, where to, and the POST body."""

    method: str
    target: Target
    body: bytes | None


def _short(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def check_target(url: str, method: str, policy: ActionPolicy) -> Target:
    """The checked form of `url` for `method`, or HttpRefused with the reason."""
    try:
        target = parse_url(url)
    except BadUrl as exc:
        raise HttpRefused(f"{_short(url)}: {exc}") from None
    if method not in policy.methods:
        raise HttpRefused(f"method {method} is not allowed ({', '.join(policy.methods)})")
    if not permitted(target, policy.urls):
        raise HttpRefused(f"{target.url} is not on the allow-list ({', '.join(policy.urls)})")
    return target


def parse_request(text: str, policy: ActionPolicy) -> Request:
    """The request the command text asks for, refused when the policy says no."""
    head, _, body = text.strip("\n").partition("\n")
    parts = head.split()
    if len(parts) == 1:
        parts = ["GET", parts[0]]
    if len(parts) != 2:
        raise HttpRefused("expected `GET URL` or `POST URL` on the first line")
    method, url = parts[0].upper(), parts[1]
    if not policy.network:
        raise HttpRefused("network is off for this action (policy: network: false)")
    target = check_target(url, method, policy)
    if method != "POST":
        return Request(method, target, None)
    try:
        return Request(method, target, body.encode("utf-8", errors="surrogateescape"))
    except UnicodeError:
        raise HttpRefused("the body is not valid text (it has a lone surrogate)") from None


def redirected(request: Request, status: int, location: str, policy: ActionPolicy) -> Request:
    """The request a redirect asks for, checked like the first one."""
    try:
        url = urllib.parse.urljoin(request.target.url, location)
    except ValueError:
        raise HttpRefused(f"redirect to {_short(location)}: not a URL") from None
    keep = status in (307, 308) or request.method != "POST"
    method = request.method if keep and status != 303 else "GET"
    try:
        target = check_target(url, method, policy)
    except HttpRefused as exc:
        raise HttpRefused(f"redirect ({status}) refused: {exc}") from None
    return Request(method, target, request.body if method == "POST" else None)


@dataclass
class Reply:
    """What the exchange ended with."""

    status: int = 0
    body: bytes = b""
    truncated: bool = False
    timed_out: bool = False
    refused: str | None = None
    error: str | None = None


class Exchange:
    """One request and its redirects on a thread of its own, so that one deadline covers all."""

    def __init__(self, request: Request, policy: ActionPolicy, cap: int, deadline: float) -> None:
        self.request = request
        self.policy = policy
        self.cap = cap
        self.deadline = deadline
        self.stage = "starting"
        self.target = request.target  # the URL of the current hop
        self.status = 0
        self.received = bytearray()
        self.reply: Reply | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._cancelled = False

    def run(self) -> Reply:
        """The reply, or what had arrived when the deadline passed."""
        threading.Thread(target=self._work, name="llmos-http", daemon=True).start()
        finished = self._done.wait(max(0.0, self.deadline - time.monotonic()))
        if finished and self.reply is not None:
            return self.reply
        self._cancel()
        with self._lock:
            body = bytes(self.received)
        error = f"no complete response within timeout_s={self.policy.timeout_s:g} ({self.stage})"
        return Reply(self.status, body, bool(body), timed_out=True, error=error)

    def _cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._sock is not None:
                # the plain socket's shutdown, also under TLS: it wakes a blocked read
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def _work(self) -> None:
        try:
            self.reply = self._follow()
        except HttpRefused as exc:
            self.reply = Reply(refused=str(exc))
        except TimeoutError:
            self.reply = Reply(self.status, bytes(self.received), True, timed_out=True)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.reply = Reply(error=describe(exc, self.target)[:300])
        except Exception as exc:  # noqa: BLE001 - the thread must always answer
            self.reply = Reply(error=f"unexpected {type(exc).__name__}: {exc}"[:300])
        finally:
            self._done.set()

    def _follow(self) -> Reply:
        request = self.request
        for _ in range(MAX_REDIRECTS + 1):
            conn, response = self._send(request)
            try:
                location = response.getheader("Location")
                if response.status in REDIRECTS and location is not None:
                    request = redirected(request, response.status, location, self.policy)
                    continue
                return self._body(response)
            finally:
                conn.close()
        return Reply(error=f"more than {MAX_REDIRECTS} redirects")

    def _send(
        self, request: Request
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        target = self.target = request.target
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.stage = f"connecting to {target.host}:{target.port}"
        conn = _connection(target, remaining)
        try:
            conn.connect()
            with self._lock:
                if self._cancelled:
                    raise TimeoutError
                self._sock = conn.sock
            self.stage = "sending the request"
            headers = dict(HEADERS)
            if request.body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(request.method, target.request_target, request.body, headers)
            self.stage = "waiting for the status line and headers"
            response = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        self.status = response.status
        return conn, response

    def _body(self, response: http.client.HTTPResponse) -> Reply:
        cap = self.cap if response.status < 400 else self.policy.output_bytes
        self.stage = f"reading the body of a {response.status} response"
        while len(self.received) <= cap:
            chunk = response.read1(min(65536, cap + 1 - len(self.received)))
            if not chunk:
                if response.length:  # http.client counts down what Content-Length announced
                    raise http.client.IncompleteRead(bytes(self.received), response.length)
                return Reply(response.status, bytes(self.received))
            with self._lock:
                self.received += chunk
        return Reply(response.status, bytes(self.received[:cap]), truncated=True)


def _connection(target: Target, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "http":
        return http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    import ssl

    context = ssl.create_default_context()
    return http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=context)


def describe(exc: BaseException, target: Target) -> str:
    """A one-line reason for a failed exchange."""
    where = f"{target.host}:{target.port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {target.host!r} ({exc.strerror})"
    if isinstance(exc, http.client.IncompleteRead):
        read, more = len(exc.partial), exc.expected
        return f"the server closed the connection early ({read} bytes read, {more} more expected)"
    if isinstance(exc, http.client.HTTPException):
        return f"bad response from the server ({type(exc).__name__}: {exc})"
    return f"{type(exc).__name__}: {exc}"


def run_http(text: str, policy: ActionPolicy) -> ActionResult:
    """Make the request; the body (capped) is stdout, the status line is stderr on failure."""
    start = time.monotonic()
    limits: dict[str, object] = {
        "urls": list(policy.urls),
        "methods": list(policy.methods),
        "timeout_s": policy.timeout_s,
    }
    try:
        request = parse_request(text, policy)
    except HttpRefused as exc:
        return ActionResult(exit_code=None, refused=str(exc), limits=limits)
    fields = policy.json_fields
    # selecting fields needs the whole JSON document; `body_bytes` caps it
    cap = policy.body_bytes if fields else policy.output_bytes
    reply = Exchange(request, policy, cap, start + policy.timeout_s).run()
    return _result(reply, policy, fields, start, limits)


def _result(
    reply: Reply,
    policy: ActionPolicy,
    fields: tuple[str, ...],
    start: float,
    limits: dict[str, object],
) -> ActionResult:
    duration = round(time.monotonic() - start, 6)
    if reply.refused is not None:
        return ActionResult(exit_code=None, refused=reply.refused, limits=limits)
    text_out = reply.body[: policy.output_bytes].decode("utf-8", errors="replace")
    if reply.timed_out:
        reason = reply.error or f"timed out after timeout_s={policy.timeout_s:g}"
        return ActionResult(
            stdout=text_out,
            stderr=f"http: {reason}\n",
            exit_code=None,
            timed_out=True,
            limit_hit="timeout",
            truncated=True,
            duration_s=duration,
            limits=limits,
        )
    if reply.error is not None:
        return ActionResult.failure(
            f"http: {reply.error}\n", timed_out=False, started=start, limits=limits
        )
    status, truncated = reply.status, reply.truncated
    text_out = reply.body.decode("utf-8", errors="replace")
    if fields and status < 400:
        text_out, truncated = select_fields(text_out, fields, truncated)
    encoded = text_out.encode()
    if len(encoded) > policy.output_bytes:
        text_out = encoded[: policy.output_bytes].decode("utf-8", errors="ignore")
        truncated = True
    return ActionResult(
        stdout=text_out,
        stderr="" if status < 400 else f"HTTP {status}\n",
        exit_code=0 if status < 400 else status,
        truncated=truncated,
        duration_s=duration,
        limits=limits,
    )


def select_fields(body: str, fields: tuple[str, ...], truncated: bool) -> tuple[str, bool]:
    """`path: value` lines for dotted `fields` of a JSON body (e.g. `info.version`).

    A small model reads two short lines far better than 4 KB of raw JSON. A body
    that is not JSON (or was cut at `body_bytes`) comes back as it is.
    """
    import json

    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return body, truncated
    lines = []
    for path in fields:
        value: object = document
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            shown = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"{path}: {shown}")
    return "".join(line + "\n" for line in lines), False
