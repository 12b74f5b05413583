"""`http` requests (see actions/http.py): the allowed methods and URLs under the prefixes."""

from __future__ import annotations

import re
import urllib.parse

from llmos_grammar.errors import GrammarError, Location
from llmos_grammar.ir import ActionPolicy, GrammarSource

SEGMENT = r"[A-Za-z0-9_.~%+-]+"
QUERY = r"(?:\?[A-Za-z0-9_.~%+=&-]*)?"


def derive(policy: ActionPolicy, where: Location) -> GrammarSource:
    """`METHOD URL` on one line: METHOD one of `methods`, URL one of `urls` followed by path
    segments (at a path boundary, as the handler checks) and an optional query."""
    if not policy.urls:
        raise GrammarError(f"action {policy.name!r} allows no URLs (`urls`)", where)
    methods = "|".join(re.escape(m.upper()) for m in policy.methods)
    urls = "|".join(_url(prefix) for prefix in policy.urls)
    text = f"(?:{methods}) (?:{urls}){QUERY}"
    return GrammarSource("regex", text, where, origin=f"policy:{policy.name}")


def _url(prefix: str) -> str:
    path = urllib.parse.urlsplit(prefix).path
    more = f"{SEGMENT}(?:/{SEGMENT})*/?"
    if path.endswith("/"):
        return f"{re.escape(prefix)}(?:{more})?"
    return f"{re.escape(prefix)}(?:/(?:{more})?)?"
