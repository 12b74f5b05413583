"""The NO_CLOSE hook: a Lark grammar marks the terminals that must never contain the close
delimiter of the state that uses it (`STRING: ... & NO_CLOSE`), and the compiler defines
NO_CLOSE from that state's actual `close`.

A grammar defines the terminal on one line, `NO_CLOSE: <default>`; its default (the shipped
grammars exclude "[/") holds wherever no close is known: a text state, a grammar tested on its
own. `exclude_close(source, close)` rewrites that line to "no text containing `close`", in
place, so line numbers, diagnostics and every backend see the same final text. A grammar
without the hook is returned unchanged (the close-conflict check still proves or refutes it).
"""

from __future__ import annotations

import re
from dataclasses import replace

from llmos_grammar.ir import GrammarSource

HOOK = "NO_CLOSE"
_HOOK_LINE = re.compile(rf"^({HOOK}\s*:)[^\n]*$", re.MULTILINE)
_USERS = re.compile(rf"^([A-Z_][A-Z0-9_]*)\s*:[^\n]*\b{HOOK}\b", re.MULTILINE)


def has_hook(source: GrammarSource) -> bool:
    """Whether `source` is Lark text that defines the NO_CLOSE terminal."""
    return source.kind == "lark" and _HOOK_LINE.search(source.text) is not None


def exclude_close(source: GrammarSource, close: str) -> GrammarSource:
    """`source` with NO_CLOSE defined as "any text not containing `close`" (recorded in
    `source.excludes`); unchanged when there is no close or no hook."""
    if not close or not has_hook(source):
        return source
    definition = f"~/(?s:.*){regex_literal(close)}(?s:.*)/"
    text = _HOOK_LINE.sub(lambda m: f"{m.group(1)} {definition}", source.text)
    return replace(source, text=text, excludes=close)


def hook_users(source: GrammarSource) -> list[str]:
    """The terminals whose definition line intersects with NO_CLOSE (e.g. STRING, COMMENT)."""
    if source.kind != "lark":
        return []
    return list(
        dict.fromkeys(m.group(1) for m in _USERS.finditer(source.text) if m.group(1) != HOOK)
    )


def regex_literal(text: str) -> str:
    """`text` as a regex that matches exactly it, on one line and safe inside Lark's /.../:
    letters and digits stay, every other character is written `\\x{HEX}`."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)
