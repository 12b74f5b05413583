"""A place in a text shown as its line (control characters escaped) with a caret under it."""

from __future__ import annotations

from llmos_grammar.visible import visible

CONTEXT = 60  # characters of a long line kept before the caret


def place(text: bytes, offset: int) -> tuple[int, int]:
    """(line, column) of byte `offset`, both from 1; the column counts characters."""
    line_start = text.rfind(b"\n", 0, offset) + 1
    line = text.count(b"\n", 0, offset) + 1
    return line, len(text[line_start:offset].decode("utf-8", "replace")) + 1


def caret_lines(text: bytes, offset: int, end: int | None = None) -> tuple[str, str]:
    """The line holding byte `offset` and, under it, `^` at that byte (and `~` under the
    rest of the bytes up to `end`, when given). The line is shown through `visible`."""
    line_start = text.rfind(b"\n", 0, offset) + 1
    line_end = text.find(b"\n", offset)
    line_end = len(text) if line_end < 0 else line_end
    before = visible(text[line_start:offset].decode("utf-8", "replace"))
    span_end = min(end if end is not None else offset + 1, line_end)
    at = visible(text[offset:span_end].decode("utf-8", "replace"))
    at = at or ("\\n" if text[offset : offset + 1] == b"\n" else " ")
    after = visible(text[span_end:line_end].decode("utf-8", "replace"))
    cut = max(0, len(before) - CONTEXT)
    shown_before = ("..." if cut else "") + before[cut:]
    pad = "".join("\t" if c == "\t" else " " for c in shown_before)
    mark = "^" + "~" * (len(at) - 1) if end is not None else "^"
    return shown_before + at.rstrip() + after[:CONTEXT], pad + mark


def char_at(text: bytes, offset: int) -> str:
    """The character byte `offset` belongs to, decoded from UTF-8 (U+FFFD when broken)."""
    start = offset
    while start > 0 and offset - start < 3 and text[start] & 0xC0 == 0x80:
        start -= 1
    return text[start : start + 4].decode("utf-8", "replace")[:1]
