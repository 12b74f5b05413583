"""The `http` handler: GET (and POST when the policy lists it) to allow-listed URLs only.

Command language: the first line is `GET URL` or `POST URL` (a bare URL means
GET); for POST the lines after the first are the body. A URL is allowed when
it starts with one of the policy's `urls` entries at a path boundary (scheme,
host and port compared exactly). Redirects are followed only to allowed URLs.
Network is off unless the policy sets `network: true`. The response body is
read incrementally and capped at `output_bytes`.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult


class HttpRefused(Exception):
    """The request is not allowed by the policy."""


def allowed(url: str, allow: tuple[str, ...]) -> bool:
    """Whether `url` falls under one of the `allow` prefixes (same scheme, host, port)."""
    target = urllib.parse.urlsplit(url)
    if target.scheme not in ("http", "https") or target.username or target.password:
        return False
    for entry in allow:
        base = urllib.parse.urlsplit(entry)
        same_origin = (base.scheme, base.hostname, base.port) == (
            target.scheme,
            target.hostname,
            target.port,
        )
        prefix = base.path.rstrip("/")
        path = target.path or "/"
        if same_origin and (not prefix or path == prefix or path.startswith(prefix + "/")):
            return True
    return False


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow: tuple[str, ...]) -> None:
        self.allow = allow

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        if not allowed(newurl, self.allow):
            raise HttpRefused(f"redirect to {newurl} is not on the allow-list")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def parse_request(text: str, policy: ActionPolicy) -> tuple[str, str, bytes | None]:
    """(method, url, body) from the command text, refused when the policy says no."""
    head, _, body = text.strip("\n").partition("\n")
    parts = head.split()
    if len(parts) == 1:
        parts = ["GET", parts[0]]
    if len(parts) != 2:
        raise HttpRefused("expected `GET URL` or `POST URL` on the first line")
    method, url = parts[0].upper(), parts[1]
    if not policy.network:
        raise HttpRefused("network is off for this action (policy: network: false)")
    if method not in policy.methods:
        raise HttpRefused(f"method {method} is not allowed ({', '.join(policy.methods)})")
    if not allowed(url, policy.urls):
        raise HttpRefused(f"{url} is not on the allow-list")
    return method, url, body.encode() if method == "POST" else None


def run_http(text: str, policy: ActionPolicy) -> ActionResult:
    """Make the request; the body (capped) is stdout, the status line is stderr on failure."""
    start = time.monotonic()
    limits = {
        "urls": list(policy.urls),
        "methods": list(policy.methods),
        "timeout_s": policy.timeout_s,
    }
    try:
        method, url, body = parse_request(text, policy)
    except HttpRefused as exc:
        return ActionResult(exit_code=None, refused=str(exc), limits=limits)
    fields = _json_fields(policy)
    # selecting fields needs the whole JSON document; `options.body_bytes` caps it
    body_bytes = policy.options.get("body_bytes", 1 << 20)
    cap = policy.output_bytes
    if fields:
        cap = body_bytes if isinstance(body_bytes, int) and body_bytes > 0 else 1 << 20
    opener = urllib.request.build_opener(_Redirects(policy.urls), urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, method=method)
    status = 0
    try:
        with opener.open(request, timeout=policy.timeout_s) as response:
            status = response.status
            data = _read_capped(response, cap, start + policy.timeout_s)
    except HttpRefused as exc:
        return ActionResult(exit_code=None, refused=str(exc), limits=limits)
    except urllib.error.HTTPError as exc:
        status, data = exc.code, _read_capped(exc, policy.output_bytes, start + policy.timeout_s)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        timed_out = "timed out" in str(exc)
        return ActionResult.failure(
            f"http: {exc}\n", timed_out=timed_out, started=start, limits=limits
        )
    content, truncated = data
    text_out = content.decode("utf-8", errors="replace")
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
        duration_s=round(time.monotonic() - start, 6),
        limits=limits,
    )


def _json_fields(policy: ActionPolicy) -> tuple[str, ...]:
    raw = policy.options.get("json_fields", ())
    return tuple(str(f) for f in raw) if isinstance(raw, list | tuple) else ()


def select_fields(body: str, fields: tuple[str, ...], truncated: bool) -> tuple[str, bool]:
    """`path: value` lines for dotted `fields` of a JSON body (e.g. `info.version`).

    A small model reads two short lines far better than 4 KB of raw JSON. A body
    that is not JSON (or was cut at `body_bytes`) comes back as it is.
    """
    import json

    try:
        document = json.loads(body)
    except ValueError:
        return body, truncated
    lines = []
    for path in fields:
        value: Any = document
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            shown = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"{path}: {shown}")
    return "".join(line + "\n" for line in lines), False


def _read_capped(response: Any, cap: int, deadline: float) -> tuple[bytes, bool]:
    chunks = bytearray()
    while len(chunks) <= cap and time.monotonic() < deadline:
        chunk = response.read(min(65536, cap + 1 - len(chunks)))
        if not chunk:
            return bytes(chunks), False
        chunks += chunk
    return bytes(chunks[:cap]), True
