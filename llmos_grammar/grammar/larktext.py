"""Light reading of Lark text: definitions, the lexemes rules use, literals (no lark needed)."""

from __future__ import annotations

import json
import re

LITERAL_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"i?')
REGEX_TOKEN = re.compile(r"/(?![/*])(?:[^/\\\n]|\\.)+/[imsux]*")
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


def definitions(text: str) -> list[tuple[str, str]]:
    """(name, body) of each rule/terminal definition; `%ignore X` counts as a rule using X."""
    found: list[tuple[str, str]] = []
    for line in text.split("\n"):
        code = "" if line.lstrip().startswith(("//", "#")) else line
        head = re.match(r"^\??([A-Za-z_][\w-]*)(?:\.\d+)?(?:\[[^\]\n]*\])?\s*:(?!=)", code)
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
