"""Untrusted text made safe to show: control, format and invisible characters become escapes."""

from __future__ import annotations

import functools
import json
import re
import unicodedata

# Categories a terminal may act on or draw as nothing: controls (C0, DEL, C1), format
# characters (bidi overrides and isolates, zero-width ones, tags), lone surrogates,
# unassigned code points, line and paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
# Letters and marks that draw as nothing although their category says otherwise: the
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, variation selectors
# (Mongolian ones too: `cmd` + U+180B is a second Python name that looks like `cmd`).
_INVISIBLE = frozenset(
    {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0}
    | set(range(0x180B, 0x1810))
    | set(range(0xFE00, 0xFE10))
    | set(range(0xE0100, 0xE01F0))
)
# Everything but printable ASCII, newline and tab is looked at one character at a time.
_CANDIDATES = re.compile(r"[^\t\n\x20-\x7e]+")

Mark = tuple[str, str]
PLAIN: Mark = ("", "")
REVERSE: Mark = ("\033[7m", "\033[27m")  # reverse video on and off; keeps the colour around it


@functools.lru_cache(maxsize=4096)
def _escape(ch: str) -> str | None:
    """The escape of a character that must not reach a terminal as it is; None to keep it."""
    code = ord(ch)
    if ch in "\t\n" or (0x20 <= code < 0x7F):
        return None
    if code not in _INVISIBLE and unicodedata.category(ch) not in _ESCAPED_CATEGORIES:
        return None
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: str, mark: Mark = PLAIN) -> str:
    """`text` with every control, format and invisible character written as `\\xNN`,
    `\\uNNNN` or `\\UNNNNNNNN` (each wrapped in `mark`); newlines and tabs are kept.

    ESC, CR, DEL, C1 controls (U+0080-U+009F), bidi overrides and isolates, zero-width
    characters and tags all come out as escapes, so nothing in `text` can move the
    cursor, clear the screen, set a title or a link, reorder or hide what is shown.
    """
    if _CANDIDATES.search(text) is None:
        return text

    def run(match: re.Match[str]) -> str:
        out = []
        for ch in match.group():
            escaped = _escape(ch)
            out.append(ch if escaped is None else f"{mark[0]}{escaped}{mark[1]}")
        return "".join(out)

    return _CANDIDATES.sub(run, text)


def escaped_count(text: str) -> int:
    """How many characters of `text` `visible` writes as escapes."""
    return sum(_escape(ch) is not None for chunk in _CANDIDATES.findall(text) for ch in chunk)


def escaped_note(text: str) -> str:
    """A line saying how many characters are shown as escapes; empty when none are."""
    n = escaped_count(text)
    if n == 0:
        return ""
    noun = "character is" if n == 1 else "characters are"
    return f"{n} control or invisible {noun} shown as \\xNN / \\uNNNN escapes"


def _json_escape(match: re.Match[str]) -> str:
    out = []
    for ch in match.group():
        if _escape(ch) is None:
            out.append(ch)
            continue
        data = ch.encode("utf-16-le", "surrogatepass")
        units = [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]
        out.append("".join(f"\\u{unit:04x}" for unit in units))
    return "".join(out)


def json_text(value: object, indent: int | None = None) -> str:
    """`json.dumps` that keeps readable text (no `ensure_ascii`) but writes every control,
    format and invisible character as `\\uXXXX`: valid JSON that loads back to the same
    value and is safe to print on a terminal."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return _CANDIDATES.sub(_json_escape, text)
