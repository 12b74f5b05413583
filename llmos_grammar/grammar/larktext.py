"""Light reading of Lark text: definitions, the lexemes rules use, literals (no lark needed)."""

from __future__ import annotations

import json
import re

LITERAL_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"i?')
REGEX_TOKEN = re.compile(r"/(?![/*])(?:[^/\\\n]|\\.)+/[imsux]*")
_HEAD = re.compile(r"^\??([A-Za-z_][\w-]*)(?:\.\d+)?(?:\[[^\]\n]*\])?\s*:(?!=)")
START_DEF = re.compile(r"^(\??)start(\s*(?:\[[^\]\n]*\])?\s*:)", re.MULTILINE)


def rule_lexemes(text: str) -> list[tuple[str, str]]:
    """(kind, text) of every lexeme a rule body or %ignore uses: "name", "regex" or "literal".
    Terminals used only inside other terminals are parts of lexemes, not lexemes."""
    found: list[tuple[str, str]] = []
    for name, body in definitions(text):
        if name[:1].isupper():
            continue
        found += [("literal", m) for m in LITERAL_TOKEN.findall(body)]
        bare = LITERAL_TOKEN.sub(" ", body)
        found += [("regex", m) for m in REGEX_TOKEN.findall(bare)]
        bare = REGEX_TOKEN.sub(" ", bare)
        found += [("name", m) for m in re.findall(r"\b[A-Z_][A-Z0-9_]*\b", bare)]
    return list(dict.fromkeys(found))


def terminal_text(text: str) -> str:
    """Only the terminal (UPPERCASE) definitions and `%import` lines of a Lark text: enough to
    compile a grammar over its terminals, much smaller than the whole grammar."""
    kept: list[str] = []
    keep = False
    for line in text.split("\n"):
        head = _HEAD.match(line)
        if head:
            keep = head.group(1)[:1].isupper()
        elif line.startswith("%import"):
            kept.append(line)
            keep = False
            continue
        elif line[:1] not in (" ", "\t", "|"):
            keep = False
        if keep:
            kept.append(line)
    return "\n".join(kept)


def definitions(text: str) -> list[tuple[str, str]]:
    """(name, body) of each rule/terminal definition; `%ignore X` counts as a rule using X."""
    found: list[tuple[str, str]] = []
    for line in text.split("\n"):
        code = "" if line.lstrip().startswith(("//", "#")) else line
        head = _HEAD.match(code)
        if head:
            found.append((head.group(1), code[head.end() :]))
        elif code.startswith("%ignore"):
            found.append(("ignore", code[len("%ignore") :]))
        elif code[:1] in (" ", "\t", "|") and found:
            found[-1] = (found[-1][0], found[-1][1] + " " + code)
    return found


def unquote(literal: str) -> str:
    """The value of a Lark string literal (JSON escapes; falls back to the raw text)."""
    try:
        return str(json.loads(literal.removesuffix("i")))
    except ValueError:
        return literal.strip('"')
