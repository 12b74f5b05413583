"""One bash word, resolved as bash would: its literal value, or why it expands at run time.

Quoting (`\\x`, `'..'`, `".."`, `$'..'`, `$".."`) and line continuations resolve to
text; plain `$NAME`, `${NAME}` and special parameters, globs, brace expansion and a
leading `~` make the word dynamic (its value is known only when bash runs it);
anything else that bash would expand (command, process and arithmetic substitution,
`${...}` operators) is refused with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_SPECIAL = set("?#@*$!-0123456789")
_ODD = set(" \t\n;&|()<>")
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_HEX = {"x": 2, "u": 4, "U": 8}


class Refused(Exception):
    """A command line the allow-list check cannot accept; the message says why."""


@dataclass(frozen=True)
class Word:
    """A resolved word. `value` is None when the word expands at run time.

    `leading` is its first character when that is literal text (so every word it
    expands to starts with it), else None; `splits` says an unquoted expansion may
    turn it into several words.
    """

    raw: str
    value: str | None
    leading: str | None
    splits: bool


@dataclass
class _Builder:
    raw: str
    chars: list[str]
    dynamic: bool = False
    splits: bool = False
    leading: str | None = None
    started: bool = False
    brace_open: bool = False
    brace: bool = False
    assignment: bool = False  # NAME=...: bash expands a `~` after its `=` or a `:`

    def literal(self, text: str) -> None:
        if text and not self.started:
            self.leading, self.started = text[0], True
        self.chars.append(text)

    def expands(self, splits: bool) -> None:
        if not self.started:
            self.leading, self.started = None, True
        self.dynamic = True
        self.splits = self.splits or splits

    def word(self) -> Word:
        if "\x00" in "".join(self.chars):
            raise Refused(f"the word {self.raw!r} holds a NUL byte")
        if self.brace:
            return Word(self.raw, None, None, True)
        value = None if self.dynamic else "".join(self.chars)
        return Word(self.raw, value, self.leading, self.splits)


def resolve(raw: str) -> Word:
    """Resolve the source text of one word (as the parser delimited it)."""
    text = join_lines(raw)
    out = _Builder(raw, [], assignment=bool(_ASSIGNMENT_LIKE.match(text)))
    i = 0
    while i < len(text):
        i = _unquoted(text, i, out)
    return out.word()


def resolve_value(raw: str) -> None:
    """Check the value of an assignment (`name=VALUE`): refuse what `resolve` refuses."""
    text = join_lines(raw)
    out = _Builder(raw, [])
    i = 0
    while i < len(text):
        i = 1 + i if text[i] == "~" else _unquoted(text, i, out)


def join_lines(raw: str) -> str:
    """`raw` without the backslash-newline pairs bash removes before it reads a word.

    They go everywhere except inside '...' and $'...', so `$\\<newline>x` is `$x` and
    a word may start with `~` or `#` only once they are gone.
    """
    out: list[str] = []
    i, quote = 0, ""
    while i < len(raw):
        c, nxt = raw[i], raw[i + 1 : i + 2]
        if quote in ("'", "$'") and c == "'":
            quote = ""
        elif quote == "$'" and c == "\\":
            out.append(c + nxt)
            i += 2
            continue
        elif quote in ("", '"') and c == "\\":
            if nxt != "\n":
                out.append(c + nxt)
            i += 2
            continue
        elif quote == "" and c == "'":
            quote = "$'" if _dollars(out) % 2 else "'"
        elif quote in ("", '"') and c == '"':
            quote = '"' if quote == "" else ""
        out.append(c)
        i += 1
    return "".join(out)


def _dollars(out: list[str]) -> int:
    """How many unescaped `$` end `out` (an odd count makes the last one start `$'...'`)."""
    count = 0
    for piece in reversed(out):
        if piece != "$":
            break
        count += 1
    return count


def _unquoted(raw: str, i: int, out: _Builder) -> int:
    c = raw[i]
    nxt = raw[i + 1 : i + 2]
    if c == "\\":
        if nxt != "\n":
            out.literal(nxt or "\\")
        return i + 2
    if c == "'":
        end = raw.find("'", i + 1)
        if end < 0:
            raise Refused(f"unterminated single quote in {raw!r}")
        out.literal(raw[i + 1 : end])
        return end + 1
    if c == '"':
        return _double(raw, i + 1, out)
    if c == "$":
        return _dollar(raw, i, out, quoted=False)
    if c == "`":
        raise Refused(f"command substitution (`...`) in {raw!r}")
    if c in "<>" and nxt == "(":
        raise Refused(f"process substitution {c}(...) in {raw!r}")
    if c in _ODD or (c == "#" and i == 0):
        raise Refused(f"cannot tell how bash splits {raw!r}; quote it")
    if c in "*?" or (c == "[" and "]" in raw[i + 1 :]) or (c == "~" and (i == 0 or out.assignment)):
        out.expands(splits=False)
    elif c == "{":
        out.brace_open = True
    elif out.brace_open and (c == "," or raw.startswith("..", i)):
        out.brace = True
    out.literal(c)
    return i + 1


def _double(raw: str, i: int, out: _Builder) -> int:
    """Past the closing quote of a double-quoted part that starts at `i`."""
    while i < len(raw):
        c = raw[i]
        if c == '"':
            return i + 1
        if c == "\\" and raw[i + 1 : i + 2] in ("$", "`", '"', "\\", "\n"):
            if raw[i + 1] != "\n":
                out.literal(raw[i + 1])
            i += 2
        elif c == "$":
            i = _dollar(raw, i, out, quoted=True)
        elif c == "`":
            raise Refused(f"command substitution (`...`) in {raw!r}")
        else:
            out.literal(c)
            i += 1
    raise Refused(f"unterminated double quote in {raw!r}")


def _dollar(raw: str, i: int, out: _Builder, quoted: bool) -> int:
    nxt = raw[i + 1 : i + 2]
    if nxt == "'" and not quoted:
        text, end = ansi_c(raw, i + 2)
        out.literal(text)
        return end
    if nxt == '"' and not quoted:
        return _double(raw, i + 2, out)
    if nxt == "(":
        kind = "arithmetic expansion $((...)); use expr" if raw[i + 2 : i + 3] == "(" else None
        raise Refused(f"{kind or 'command substitution $(...)'} in {raw!r}")
    if nxt == "[":
        raise Refused(f"arithmetic expansion $[...] in {raw!r}; use expr")
    if nxt == "{":
        end = raw.find("}", i)
        inner = raw[i + 2 : end] if end > 0 else ""
        if not (_NAME.fullmatch(inner) or (len(inner) == 1 and inner in _SPECIAL)):
            raise Refused(
                f"parameter expansion {raw[i : end + 1 if end > 0 else None]!r}: only plain"
                " $NAME and ${NAME} are allowed with a command allow-list"
            )
        out.expands(splits=not quoted)
        return end + 1
    name = _NAME.match(raw, i + 1)
    if name:
        out.expands(splits=not quoted)
        return name.end()
    if nxt and nxt in _SPECIAL:
        out.expands(splits=not quoted or nxt in "@*")
        return i + 2
    out.literal("$")
    return i + 1


def ansi_c(raw: str, i: int) -> tuple[str, int]:
    """The text of a `$'...'` string whose body starts at `i`, and the index past it.

    Its end is found as bash's reader finds it (a backslash hides the next
    character, quote included); then the escapes are decoded.
    """
    end = i
    while end < len(raw) and raw[end] != "'":
        end += 2 if raw[end] == "\\" else 1
    if end >= len(raw):
        raise Refused(f"unterminated $'...' string in {raw!r}")
    body, chars, j = raw[i:end], [], 0
    while j < len(body):
        if body[j] != "\\" or j + 1 >= len(body):
            chars.append(body[j])
            j += 1
            continue
        text, j = _escape(body, j + 1)
        chars.append(text)
    return "".join(chars), end + 1


def _escape(raw: str, i: int) -> tuple[str, int]:
    """One escape of a `$'...'` string, `i` just past its backslash."""
    c = raw[i]
    if c in _ESCAPES:
        return _ESCAPES[c], i + 1
    if c in "01234567":
        digits = re.match(r"[0-7]{1,3}", raw[i:])
        assert digits is not None
        return chr(int(digits.group(), 8) & 0xFF), i + len(digits.group())
    if c in _HEX:
        digits = re.match(rf"[0-9A-Fa-f]{{1,{_HEX[c]}}}", raw[i + 1 :])
        if digits is None:
            return "\\" + c, i + 1
        code = int(digits.group(), 16)
        if code > 0x10FFFF:
            raise Refused(f"escape \\{c}{digits.group()} is out of range in {raw!r}")
        return chr(code), i + 1 + len(digits.group())
    if c == "c" and i + 1 < len(raw):
        target = raw[i + 1]
        if not target.isascii():
            raise Refused(f"\\c before a non-ASCII character in {raw!r}")
        used = 3 if raw[i + 1 : i + 3] == "\\\\" else 2
        return chr(0x7F if target == "?" else ord(target.upper()) & 0x1F), i + used
    return "\\" + c, i + 1
