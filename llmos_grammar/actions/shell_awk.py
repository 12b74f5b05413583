"""awk command lines: refuse program files, extensions and what runs a shell command.

`system()`, pipes to and from commands (`|`, `|&`), `@` indirect calls and
`@load`/`@include`, and `extension()` are refused by a plain text search of the
program (so `|` inside a regex is refused too: write `/a/ || /b/`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmos_grammar.actions.shell_words import Word

_AWK_VALUE = set("Fv")
_AWK_REFUSED = set("fEilWeD")  # D: the debugger, whose eval runs awk code
_AWK_LONGS = ("file", "exec", "include", "load", "source", "debug")
_AWK_LONG_VALUE = ("field-separator", "assign")
_AWK_CALLS = re.compile(r"system|extension|@")


def awk_args(args: Sequence[Word]) -> str | None:
    """Why this awk command line could run a shell command, or None."""
    i = 0
    while i < len(args):
        word = args[i]
        value = word.value
        i += 1
        if value is None:
            return f"argument {word.raw!r} of awk expands at run time; write the program out"
        if value == "--":
            return awk_problem(args[i]) if i < len(args) else None
        if value.startswith("--"):
            given = value[2:].partition("=")[0]
            if any(n.startswith(given) for n in _AWK_LONGS):
                return f"awk option {value!r} loads a program or extension; write it inline"
            if "=" not in value and any(n.startswith(given) for n in _AWK_LONG_VALUE):
                i += 1
        elif value.startswith("-") and len(value) > 1:
            for j, c in enumerate(value[1:], start=1):
                if c in _AWK_REFUSED:
                    return f"awk option -{c} loads a program or extension; write the program inline"
                if c in _AWK_VALUE:
                    i += 0 if value[j + 1 :] else 1
                    break
        else:
            return awk_problem(word)
    return None


def awk_problem(word: Word) -> str | None:
    """Why an awk program could run a shell command, or None."""
    program = word.value
    if program is None:
        return f"awk program {word.raw!r} expands at run time; write it out"
    found = _AWK_CALLS.search(program)
    if found or "|" in program.replace("||", ""):
        what = found.group() if found else "|"
        return (
            f"awk program uses {what!r}, which can run a shell command (system(), pipes"
            " to and from commands, @ calls); for a regex alternative write /a/ || /b/"
        )
    return None
