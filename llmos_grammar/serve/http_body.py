"""A request body: its size checked while it is read, then strict UTF-8 JSON holding an object."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from llmos_grammar.serve.http_errors import BodyTooLarge
from llmos_grammar.serve.types import BadRequest

if TYPE_CHECKING:
    from starlette.requests import Request

MAX_BODY_BYTES = 8 * 1024 * 1024
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


async def read_json(request: Request, limit: int) -> dict[str, object]:
    """The body as a JSON object; BadRequest (400) or BodyTooLarge (413) otherwise."""
    check_headers(request.headers.get("content-type"), request.headers.get("content-encoding"))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return parse_json(bytes(body))


def check_headers(content_type: str | None, content_encoding: str | None) -> None:
    """JSON in UTF-8, not compressed; no Content-Type at all is taken as JSON."""
    if content_encoding and content_encoding.strip().lower() != "identity":
        raise BadRequest(
            f"Content-Encoding {content_encoding.strip()[:40]!r} is not accepted: "
            "send the JSON body uncompressed"
        )
    if content_type is None:
        return
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise BadRequest(
            f"Content-Type {media[:60]!r} is not accepted: send application/json",
            code="unsupported_content_type",
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise BadRequest(
                f"charset {charset[:40]!r} is not accepted: send the body in UTF-8",
                code="unsupported_content_type",
            )


def parse_json(raw: bytes) -> dict[str, object]:
    """Strict: UTF-8 only, no NaN or Infinity, no unpaired surrogate escape, an object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"the body is not valid UTF-8 (byte {exc.start}): send JSON in UTF-8"
        ) from None
    if not text.strip():
        raise BadRequest("the body is empty: send a JSON object")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest("the JSON body nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:  # a number past Python's digit limit, NaN or Infinity
        raise BadRequest(f"the body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"the body must be a JSON object, not {_kind(value)}")
    if _SURROGATE_ESCAPE.search(raw):
        _check_surrogates(value)
    return value


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _check_surrogates(value: dict[str, object]) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            "the body holds an unpaired surrogate escape (\\ud800-\\udfff): "
            "strings must be valid Unicode"
        ) from None


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"the request body is larger than the server's limit of {limit:,} bytes",
        code="body_too_large",
    )


def _kind(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")
