"""The API key: `Authorization: Bearer KEY`, compared in constant time."""

from __future__ import annotations

import hmac
import ipaddress

from llmos_grammar.serve.http_errors import Unauthorized


def check_key(authorization: str | None, key: str | None) -> None:
    """Raise Unauthorized (401) unless `authorization` carries `key`; no key: anyone."""
    if key is None:
        return
    if not authorization:
        raise Unauthorized(
            "no API key: send the header Authorization: Bearer KEY", code="invalid_api_key"
        )
    scheme, _, token = authorization.strip().partition(" ")
    # Starlette decodes header values as latin-1, so encoding back gives the bytes sent.
    sent = token.strip().encode("latin-1")
    if not hmac.compare_digest(sent, key.encode("utf-8")) or scheme.lower() != "bearer":
        raise Unauthorized("the API key is not valid", code="invalid_api_key")


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
