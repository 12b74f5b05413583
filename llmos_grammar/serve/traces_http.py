"""The routes of `llmos serve --traces N`: the kept traces' index and each trace's page.

    GET /traces                   an HTML table of the kept traces (`?format=json`: JSON)
    GET /traces/{id}              the trace's self-contained page (`run_html`)
    GET /traces/{id}?format=jsonl the trace as `llmos-run --trace` writes it

An id that was never kept or was evicted is a 404 in OpenAI's error shape. Pages are
built on a worker thread: a long trace takes a while to lay out.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from html import escape
from typing import TYPE_CHECKING

from llmos_grammar.serve.http_errors import json_response
from llmos_grammar.serve.traces import KeptTrace, TraceStore
from llmos_grammar.serve.traces_record import TRACES_PATH
from llmos_grammar.serve.types import BadRequest, ServeError
from llmos_grammar.visible import visible

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

SHOWN = ("html", "json")  # the index's formats
FORMATS = ("html", "jsonl")  # a trace's formats
STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:16px 22px;color:#1f2328}"
    "table{border-collapse:collapse}td,th{border-bottom:1px solid #d1d9e0;padding:4px 10px;"
    "text-align:left;vertical-align:top}td.task{max-width:40em;overflow-wrap:anywhere}"
    "code{font:12px ui-monospace,monospace}.muted{color:#59636e}"
)
SAFE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class UnknownTrace(ServeError):
    status = 404


def kept_or_404(store: TraceStore, trace_id: str) -> KeptTrace:
    kept = store.get(trace_id)
    if kept is None:
        raise UnknownTrace(
            f"no trace {visible(trace_id[:64])!r}: it was never kept here or a newer one "
            f"took its place (this server keeps the last {store.keep}; GET /traces lists them)",
            param="id",
            code="trace_not_found",
        )
    return kept


def format_of(request: Request, allowed: tuple[str, ...]) -> str:
    wanted = request.query_params.get("format", allowed[0])
    if wanted not in allowed:
        raise BadRequest(
            f"format {visible(wanted[:64])!r} is not one of: {', '.join(allowed)}", "format"
        )
    return wanted


async def trace_page(request: Request, store: TraceStore) -> Response:
    """One trace: its page, or its JSONL."""
    from starlette.responses import HTMLResponse, Response

    kept = kept_or_404(store, str(request.path_params["trace_id"]))
    if format_of(request, FORMATS) == "jsonl":
        headers = {**SAFE_HEADERS, "Content-Disposition": f'inline; filename="{kept.id}.jsonl"'}
        return Response(kept.jsonl, media_type="application/jsonl", headers=headers)
    page = await asyncio.to_thread(_page, kept)
    return HTMLResponse(page, headers=SAFE_HEADERS)


def _page(kept: KeptTrace) -> str:
    from llmos_grammar.viewer import run_html

    return run_html(kept.trace())


async def trace_index(request: Request, store: TraceStore) -> Response:
    """Every kept trace, the newest first: an HTML table or a JSON list."""
    from starlette.responses import HTMLResponse

    listed = store.listed()
    if format_of(request, SHOWN) == "json":
        return json_response({"object": "list", "data": [_entry(k) for k in listed]})
    policy = f"default-src 'none'; style-src {_hash(STYLE)}; base-uri 'none'; form-action 'none'"
    headers = {**SAFE_HEADERS, "Content-Security-Policy": policy}
    return HTMLResponse(index_html(listed, store), headers=headers)


def _entry(kept: KeptTrace) -> dict[str, object]:
    return {
        "id": kept.id,
        "url": TRACES_PATH + kept.id,
        "model": kept.model,
        "choice": kept.choice,
        "created": round(kept.created, 3),
        "status": kept.status,
        "task": kept.task,
        "bytes": kept.size,
    }


def index_html(listed: list[KeptTrace], store: TraceStore) -> str:
    """The index page: one row per trace, the untrusted task shown as escaped text."""
    rows = "".join(_row(kept) for kept in listed)
    empty = '<p class="muted">No trace kept yet: each request adds one per choice.</p>'
    table = (
        "<table><thead><tr><th>trace</th><th>model</th><th>time (UTC)</th><th>status</th>"
        f"<th>task</th><th>bytes</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>llmos serve: traces</title><style>{STYLE}</style></head><body>"
        "<h1>llmos serve: traces</h1>"
        f'<p class="muted">The last {store.keep} request choices (within '
        f"{store.max_bytes // (1024 * 1024)} MiB), newest first; a trace's JSONL: add "
        "<code>?format=jsonl</code> to its link.</p>"
        f"{table if listed else empty}</body></html>\n"
    )


def _row(kept: KeptTrace) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(kept.created))
    link = f'<a href="{TRACES_PATH}{kept.id}"><code>{kept.id}</code></a>'
    choice = f" #{kept.choice}" if kept.choice else ""
    cells = (
        link,
        escape(visible(kept.model)) + choice,
        when,
        escape(visible(kept.status)),
        escape(visible(kept.task)),
        str(kept.size),
    )
    classes = ("", "", "", "", ' class="task"', "")
    tds = "".join(f"<td{c}>{v}</td>" for c, v in zip(classes, cells, strict=True))
    return f"<tr>{tds}</tr>"


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"
