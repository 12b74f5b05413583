"""A Lark grammar with a marker beside each lexeme its rules use, so that llguidance itself
says which lexemes may start at a place, in the grammar's own names.

Every use of a lexeme in a rule body (`NAME`, `"print("`, `/[0-9]+/`) becomes
`(NAME | <[255]><[255]><[248]>)`: a marker of three byte tokens, each a byte no UTF-8 text
holds (0xf5-0xff), so no lexeme of text can take one, not even a string's `[^']`. On text
the grammar is the same language, lexed the same way; after a prefix, the markers the
matcher takes name the lexemes the parser expects there. Rules holding a nested grammar
(`%json {...}`) or a range (`..`) are left as they are; they name nothing.
"""

from __future__ import annotations

import re

LEADS = range(0xFF, 0xF4, -1)  # the bytes markers are made of: never in UTF-8 text
MAX_MARKS = len(LEADS) ** 3
_HEAD = re.compile(r"^\??([A-Za-z_][\w-]*)(?:\.\d+)?(?:\[[^\]\n]*\])?\s*:(?!=)")
_PIECE = re.compile(
    r"(?P<skip>//[^\n]*|<[^>\n]*>)"
    r'|(?P<lexeme>"(?:[^"\\\n]|\\.)*"i?'
    r"|/(?![/*])(?:[^/\\\n]|\\.)+/[imsux]*"
    r"|\b_?[A-Z][A-Z0-9_]*\b)"
)
_NESTED = re.compile(r"%\w+|\.\.")


def marker(index: int) -> bytes:
    """The three bytes (byte-table tokens) of the marker of lexeme `index`."""
    size = len(LEADS)
    return bytes((LEADS[index // size**2], LEADS[index // size % size], LEADS[index % size]))


def _lark(index: int) -> str:
    return "".join(f"<[{byte}]>" for byte in marker(index))


Use = tuple[str, str]  # (a lexeme as written: NAME, "print(", /[0-9]+/; the rule using it)


def mark_rules(text: str) -> tuple[str, tuple[Use, ...]]:
    """`text` with a marker beside every lexeme its rules use, and the uses by marker index:
    each lexeme gets one marker per rule that uses it, so a marker also names the rule."""
    names: dict[Use, int] = {}
    out: list[str] = []
    in_rule = False
    rule = ""
    depth = 0  # open braces of a nested grammar being skipped
    for line in text.split("\n"):
        if depth:
            depth = max(0, depth + line.count("{") - line.count("}"))
            out.append(line)
            continue
        head = _HEAD.match(line)
        if head:
            rule = head.group(1)
            in_rule = not rule.lstrip("_")[:1].isupper()
            body_at = head.end()
        elif line[:1] in (" ", "\t", "|") and in_rule:
            body_at = 0
        else:
            in_rule = False
            out.append(line)
            continue
        body = line[body_at:]
        if not in_rule or _NESTED.search(_code(body)):
            depth = max(0, body.count("{") - body.count("}"))
            in_rule = in_rule and not depth
            out.append(line)
            continue
        out.append(line[:body_at] + _marked(body, rule, names))
    return "\n".join(out), tuple(names)


def _code(body: str) -> str:
    """`body` without its literals, regexes and comment (where `%` and `..` mean syntax)."""
    return _PIECE.sub(lambda m: " " if m.group("skip") is None else "", body)


def _marked(body: str, rule: str, names: dict[Use, int]) -> str:
    def wrap(match: re.Match[str]) -> str:
        lexeme = match.group("lexeme")
        if lexeme is None:
            return match.group()
        index = names.setdefault((lexeme, rule), len(names))
        if index >= MAX_MARKS:
            return lexeme
        return f"({lexeme} | {_lark(index)})"

    return _PIECE.sub(wrap, body)
