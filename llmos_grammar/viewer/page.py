"""One self-contained HTML page: the frame, inline CSS and JavaScript, the page data as JSON.

Nothing is fetched: a Content-Security-Policy allows only this page's own script and style
(by their hashes). Untrusted text travels as JSON data, with `<`, `>` and `&` escaped so it
cannot close the data's script element, and the script puts it on the page as text only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from html import escape
from importlib import resources

LEGEND = (
    '<div class="legend"><span class="t s">sampled</span><span class="t f">forced</span>'
    '<span class="t i">injected</span><span class="t h"></span>healed (token healing)'
    '<label><input type="checkbox" data-toggle="shade"> shade sampled tokens by '
    "probability</label>"
    '<label><input type="checkbox" data-toggle="hide-f"> dim forced</label>'
    '<label><input type="checkbox" data-toggle="hide-i"> dim injected</label></div>'
)


@cache
def _asset(name: str) -> str:
    return resources.files("llmos_grammar.viewer").joinpath("assets", name).read_text("utf-8")


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def data_json(data: object) -> str:
    """`data` as JSON that can stand inside a <script> element: no `<`, `>` or `&` (nor a
    line or paragraph separator) outside an escape."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def document(title: str, subtitle: str, body: str, data: object, diagram: str) -> str:
    """The page: `body` (trusted markup we made) beside the `diagram` (SVG), the data and
    the viewer's script. `title` and `subtitle` are escaped here."""
    css, js = _asset("viewer.css"), _asset("viewer.js")
    policy = (
        f"default-src 'none'; script-src {_hash(js)}; style-src {_hash(css)}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    side = f'<aside class="diagram-box">{diagram}</aside>' if diagram else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{css}</style></head>\n"
        f'<body><header class="top"><h1>{escape(title)}</h1>'
        f'<div class="sub">{escape(subtitle)}</div></header>\n'
        f'<div class="layout"><div id="main">{body}</div>{side}</div>\n'
        '<div id="tip" hidden></div>\n'
        f'<script type="application/json" id="llmos-data">{data_json(data)}</script>\n'
        f"<script>{js}</script>\n</body></html>\n"
    )


def run_body() -> str:
    """The frame of a run's page: the legend, then the run (drawn by the script)."""
    return f'{LEGEND}<div id="run"></div>'


def eval_body() -> str:
    """The frame of an evaluation's page: the tables, then the panel a row opens."""
    return (
        '<div id="eval"></div><section id="panel" class="panel" hidden><h2></h2>'
        f'{LEGEND}<div id="run"></div></section>'
    )
