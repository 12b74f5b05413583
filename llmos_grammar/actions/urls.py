"""URLs for the http handler: parsed and checked (scheme, host, port, an unambiguous path).

A path is accepted only when its meaning cannot depend on how the server
decodes it: no "." or ".." segment (also spelled "%2e", with ";params", or in
full-width forms), no empty segment ("//") before the last, no backslash, no
"%2f", "%5c", control character or NUL once decoded, no double encoding ("%25"
+ hex), no escape that is not UTF-8. Such a path is refused, not rewritten:
what is sent is exactly what was checked. The allow-list compares scheme, host
and port (the default port filled in) and then whole decoded path segments.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

MAX_URL = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f/\\]")


class BadUrl(ValueError):
    """A URL that cannot be sent as it is; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL: what the request will be sent to, and the path's decoded segments."""

    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int
    path: str  # sent as it is
    query: str
    segments: tuple[str, ...]  # decoded; a trailing "/" adds none

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def request_target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.request_target}"


def parse_url(url: str) -> Target:
    """The checked form of `url`; BadUrl with the reason when it is not acceptable."""
    if len(url) > MAX_URL:
        raise BadUrl(f"the URL is longer than {MAX_URL} characters")
    if not _PRINTABLE.fullmatch(url):
        raise BadUrl("the URL has a blank, a control character or non-ASCII text; percent-encode")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise BadUrl(f"the URL cannot be parsed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BadUrl(f"the scheme must be http or https, not {parts.scheme or 'none'!r}")
    host, port = _authority(parts.netloc, DEFAULT_PORTS[scheme])
    path = parts.path or "/"
    return Target(scheme, host, port, path, parts.query, path_segments(path))


def _authority(netloc: str, default_port: int) -> tuple[str, int]:
    if "@" in netloc:
        raise BadUrl("user names and passwords in URLs are not allowed")
    if netloc.startswith("["):
        literal, bracket, rest = netloc[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise BadUrl(f"the host {netloc!r} is not a valid [IPv6] literal")
        return _ipv6(literal), _port(rest[1:], default_port)
    host, colon, port_text = netloc.partition(":")
    if colon and ":" in port_text:
        raise BadUrl(f"the host {netloc!r} has more than one ':'; write IPv6 as [address]")
    return _hostname(host), _port(port_text, default_port)


def _ipv6(literal: str) -> str:
    if "%" in literal:
        raise BadUrl(f"IPv6 zone ids are not allowed ({literal!r})")
    try:
        return ipaddress.IPv6Address(literal).compressed
    except ValueError:
        raise BadUrl(f"{literal!r} is not an IPv6 address") from None


def _hostname(host: str) -> str:
    name = host.lower()
    if not name:
        raise BadUrl("the URL has no host")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise BadUrl(
            f"the host {host!r} is not a valid name (letters, digits, '-' and '_' in labels"
            " of at most 63 characters, separated by '.')"
        )
    return name


def _port(text: str, default: int) -> int:
    if not text:
        return default
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise BadUrl(f"the port {text!r} is not a number from 1 to 65535")
    return int(text)


def path_segments(path: str) -> tuple[str, ...]:
    """The decoded segments of an absolute `path`; BadUrl when its meaning is ambiguous."""
    if not path.startswith("/"):
        raise BadUrl(f"the path {path!r} does not start with '/'")
    raw = path[1:].split("/")
    if raw[-1] == "":
        raw.pop()  # a trailing "/" names the same prefix
    return tuple(_segment(segment, path) for segment in raw)


def _segment(raw: str, path: str) -> str:
    if raw == "":
        raise BadUrl(f"the path {path!r} has an empty segment ('//'); write it with single '/'")
    if "\\" in raw:
        raise BadUrl(f"the path {path!r} has a backslash")
    if _BAD_PERCENT.search(raw):
        raise BadUrl(f"the path {path!r} has a '%' that starts no escape; write '%25'")
    try:
        decoded = urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl(f"the path {path!r} has escapes that are not UTF-8") from None
    if _CONTROL.search(decoded):
        raise BadUrl(f"the path {path!r} encodes '/', '\\' or a control character")
    if _ESCAPE.search(decoded):
        raise BadUrl(f"the path {path!r} is encoded twice ('%25' before hex digits)")
    name = unicodedata.normalize("NFKC", decoded.partition(";")[0])
    if _CONTROL.search(name):
        raise BadUrl(f"the path {path!r} has a character that reads as '/' or '\\'")
    if name and set(name) <= {"."}:
        raise BadUrl(f"the path {path!r} has a dot segment; write it without '.' and '..'")
    if not name and raw.startswith(";"):
        raise BadUrl(f"the path {path!r} has a segment with parameters only")
    return decoded


def permitted(target: Target, allow: tuple[str, ...]) -> bool:
    """Whether `target` falls under one of the `allow` prefixes: same origin, whole segments."""
    for entry in allow:
        try:
            base = parse_url(entry)
        except BadUrl:
            continue  # the policy check reports a bad entry; it allows nothing
        prefix = base.segments
        if base.origin == target.origin and target.segments[: len(prefix)] == prefix:
            return True
    return False


def allowed(url: str, allow: tuple[str, ...]) -> bool:
    """Whether `url` is acceptable and falls under one of the `allow` prefixes."""
    try:
        return permitted(parse_url(url), allow)
    except BadUrl:
        return False
