"""A state's constraint as one Lark grammar, the form vLLM's guidance backend accepts.

Our own matchers nest the body grammar under a top-level one (`@llmos_body`
then the close delimiter, in llguidance's JSON form); vLLM's `grammar` field
takes Lark text only, so the body's `start` rule is renamed and the close
follows it in the same grammar. Regexes become one lexeme, JSON schemas an
inline `%json` rule.
"""

from __future__ import annotations

import json
import re

from llmos_grammar.ir import GrammarSource

BODY = "llmos_body"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def lark_for_vllm(source: GrammarSource, close: str | None) -> str:
    """Lark text accepting `source` followed by the literal `close` (when given)."""
    if source.kind == "lark":
        body = rename_start(source.text)
    elif source.kind == "regex":
        body = f"{BODY}: /{source.text.replace('/', chr(92) + '/')}/\n"
    elif source.kind == "json_schema":
        body = f"{BODY}: %json {json.dumps(json.loads(source.text))}\n"
    else:
        raise ValueError(f"unknown constraint kind {source.kind!r}")
    tail = f" {json.dumps(close)}" if close else ""
    return f"start: {BODY}{tail}\n{body}"


def rename_start(text: str) -> str:
    """The Lark grammar with its rule `start` named BODY (strings, regexes, comments kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = _skip_quoted(text, i, '"')
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif c == "/":
            j = _skip_quoted(text, i, "/")
        elif c == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
        else:
            match = _WORD.match(text, i)
            if match is None:
                out.append(c)
                i += 1
                continue
            word = match.group()
            out.append(BODY if word == "start" else word)
            i = match.end()
            continue
        out.append(text[i:j])
        i = j
    return "".join(out)


def _skip_quoted(text: str, start: int, quote: str) -> int:
    """The index after the quoted run that begins at `start` (backslash escapes)."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote or (text[i] == "\n" and quote == "/"):
            return i + 1
        i += 1
    return len(text)
