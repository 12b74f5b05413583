"""sed command lines (GNU syntax): refuse `-f`, the `e` command and the `s///e` flag.

The script is scanned command by command, and anything this scanner does not
know, or could read two ways, is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmos_grammar.actions.shell_words import Word

_SED_LONGS = {
    "expression": "value",
    "file": "file",
    "line-length": "value",
    "in-place": "",
    "quiet": "",
    "silent": "",
    "regexp-extended": "",
    "separate": "",
    "unbuffered": "",
    "null-data": "",
    "zero-terminated": "",
    "posix": "",
    "debug": "",
    "sandbox": "",
    "follow-symlinks": "",
    "binary": "",
    "help": "",
    "version": "",
}
_SED_SIMPLE = set("=dDgGhHlLnNpPqQxzF")
_END = set(";\n}#")


def _long(given: str, names: dict[str, str]) -> str | None:
    if given in names:
        return given
    found = [n for n in names if n.startswith(given)]
    return found[0] if len(found) == 1 else None


def sed_args(args: Sequence[Word]) -> str | None:
    """Why this sed command line could run a shell command, or None."""
    scripts: list[str | None] = []
    operands = 0
    i = 0
    while i < len(args):
        word = args[i]
        value = word.value
        following = args[i + 1].value if i + 1 < len(args) else ""
        i += 1
        if value is None:
            if word.leading in (None, "-") or word.splits or not (scripts or operands):
                return f"argument {word.raw!r} of sed expands at run time; write it out"
            operands += 1
        elif value == "--":
            continue
        elif value.startswith("-") and len(value) > 1:
            given, used, problem = _sed_option(value, following)
            if problem is not None:
                return problem
            scripts += given
            i += used
        elif not scripts and not operands:
            scripts.append(value)
        else:
            operands += 1
    if None in scripts:
        return "the sed script expands at run time; write it out"
    return next((p for p in map(sed_problem, filter(None, scripts)) if p is not None), None)


def _sed_option(value: str, following: str | None) -> tuple[list[str | None], int, str | None]:
    """One sed option word: (the script it gives, if any; words after it used up; problem).

    The script is attached (`-es/a/b/`, `--expression=...`) or the following word.
    """
    if value.startswith("--"):
        name, eq, attached = value[2:].partition("=")
        full = _long(name, _SED_LONGS)
        if full is None or _SED_LONGS[full] == "file":
            return [], 0, f"sed option {value!r} is refused (-f reads a script: write it inline)"
        if full == "expression":
            return ([attached], 0, None) if eq else ([following], 1, None)
        return [], int(_SED_LONGS[full] == "value" and not eq), None
    for j, c in enumerate(value[1:], start=1):
        rest = value[j + 1 :]
        if c == "f":
            return [], 0, "sed -f reads its script from a file; write the script inline"
        if c == "e":
            return ([rest], 0, None) if rest else ([following], 1, None)
        if c == "l":
            return [], int(not rest), None
        if c == "i":
            return [], 0, None
        if c not in "nrsuzEb":
            return [], 0, f"sed option -{c} is not known to the allow-list check"
    return [], 0, None


def sed_problem(script: str) -> str | None:
    """Why a GNU sed script could run a shell command, or None."""
    try:
        _SedScan(script).run()
    except ValueError as exc:
        return f"sed script {script!r}: {exc}"
    return None


class _SedScan:
    """A cursor over a sed script; `run` raises ValueError at the first unsafe or unknown part."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def peek(self) -> str:
        return self.text[self.i : self.i + 1]

    def blanks(self) -> None:
        while self.peek() in (" ", "\t"):
            self.i += 1

    def run(self) -> None:
        while self.i < len(self.text):
            c = self.peek()
            if c in " \t\n;}":
                self.i += 1
            elif c == "#":
                self.line()
            else:
                self.command()

    def line(self) -> None:
        """Skip to the end of the line; a backslash escapes the next character (text of a/i/c)."""
        while self.i < len(self.text) and self.peek() != "\n":
            self.i += 2 if self.peek() == "\\" else 1

    def command(self) -> None:
        self.address()
        if self.peek() == ",":
            self.i += 1
            self.blanks()
            if self.peek() in ("+", "~"):
                self.i += 1
            self.address()
        self.blanks()
        while self.peek() == "!":
            self.i += 1
            self.blanks()
        cmd = self.peek()
        self.i += 1
        if cmd == "e":
            raise ValueError("the e command runs a shell command")
        if cmd == "s":
            self.delimited(2)
            self.flags()
        elif cmd == "y":
            self.delimited(2)
            self.end()
        elif cmd in "aicrRwW" and cmd:
            self.line()
        elif cmd in ":btT" and cmd:
            self.label()
        elif cmd in _SED_SIMPLE or cmd == "v":
            while self.peek().isdigit() or (cmd == "v" and self.peek() not in _END | {""}):
                self.i += 1
            self.end()
        elif cmd not in ("{", "}"):
            raise ValueError(f"unknown command {cmd!r}")

    def address(self) -> None:
        c = self.peek()
        if c.isdigit():
            while self.peek().isdigit() or self.peek() == "~":
                self.i += 1
        elif c == "$":
            self.i += 1
        elif c in ("/", "\\"):
            if c == "\\":
                self.i += 1
            self.delimited(1, regex_only=True)
            while self.peek() in ("I", "M"):
                self.i += 1

    def delimited(self, parts: int, regex_only: bool = False) -> None:
        """Skip `parts` parts closed by the delimiter at the cursor (a regex, a replacement)."""
        delim = self.peek()
        if delim in ("", "\n", "\\"):
            raise ValueError("missing or bad delimiter")
        self.i += 1
        for part in range(parts):
            regex = part == 0 or regex_only
            ends = {_part_end(self.text, self.i, delim, regex, way) for way in _BRACKETS}
            if len(ends) > 1:
                raise ValueError(
                    "a [...] bracket makes the end of a regex ambiguous; escape the delimiter"
                    " or avoid backslashes and the delimiter inside the brackets"
                )
            end = ends.pop()
            if end < 0:
                raise ValueError("unterminated regex or replacement")
            self.i = end

    def flags(self) -> None:
        while self.peek() not in _END | {""}:
            c = self.peek()
            if c == "e":
                raise ValueError("the e flag of s runs the pattern space as a shell command")
            if c == "w":
                self.line()
                return
            if not (c.isdigit() or c in "gpiImM \t"):
                raise ValueError(f"unknown s flag {c!r}")
            self.i += 1

    def label(self) -> None:
        self.blanks()
        start = self.i
        while self.peek() not in (" ", "\t", ";", "\n", ""):
            self.i += 1
        if any(c in "}#" for c in self.text[start : self.i]):
            raise ValueError("a label holding } or # is ambiguous")
        self.end()

    def end(self) -> None:
        self.blanks()
        if self.peek() not in _END | {""}:
            raise ValueError(f"unexpected {self.peek()!r} after a command")


# How a regex's [...] brackets may be read: not at all, with a backslash escaping
# inside them, or with a backslash as a plain character there (POSIX). A regex is
# accepted only where all three find the same end.
_BRACKETS = ("none", "escape", "posix")


def _part_end(text: str, i: int, delim: str, regex: bool, brackets: str) -> int:
    """The index past the delimiter closing the part that starts at `i`; -1 when none does."""
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
        elif c == delim:
            return i + 1
        elif c == "\n" and regex:
            return -1
        elif c == "[" and regex and brackets != "none":
            i = _bracket_end(text, i + 1, brackets == "escape")
        else:
            i += 1
    return -1


def _bracket_end(text: str, i: int, escapes: bool) -> int:
    """The index past the `]` closing a bracket expression whose body starts at `i`."""
    i += text.startswith("^", i)
    i += text.startswith("]", i)
    while i < len(text):
        c = text[i]
        if c == "\\" and escapes:
            i += 2
        elif c == "[" and text[i + 1 : i + 2] in (":", ".", "="):
            close = text.find(text[i + 1] + "]", i + 2)
            i = len(text) if close < 0 else close + 2
        elif c == "]":
            return i + 1
        else:
            i += 1
    return len(text)
