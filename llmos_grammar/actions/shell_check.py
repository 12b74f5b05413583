"""The command allow-list, checked on the command line as bash parses it (with bashlex).

Every simple command bash would run must have a literal name on the list; what bash
could resolve only at run time (a command word that expands, substitutions, `${...}`
operators, functions, here-documents, assignments to the environment's and bash's
own upper-case names) and anything bashlex cannot parse are refused. Options of listed
commands that run programs are refused through `shell_options`.
"""

from __future__ import annotations

import re
from typing import Protocol

from llmos_grammar.actions.shell_options import OPTIONS, REFUSED
from llmos_grammar.actions.shell_words import Refused, Word, resolve, resolve_value

MAX_CHARS = 8192  # bashlex takes about 1 s per 8 KiB of a long list on a slow core
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\+?=")
_FD_NAME = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_BASH_LOWER = {"auto_resume", "histchars"}
# `${` not closed by `NAME}`: refused before bashlex, which loops without end on some
# (a quoted `'${'` followed by more text).
_BRACE_OPEN = re.compile(r"\$\{(?![A-Za-z_][A-Za-z0-9_]*\}|[?#@*$!0-9-]\})")
_SKIP = {"operator", "pipe", "reservedword"}
_BRANCHES = {"list", "pipeline", "if", "while", "until"}
_CONSTRUCTS = {"pattern": "case", "time": "time", "coproc": "coproc", "select": "select"}


class _Node(Protocol):
    """A bashlex node. `kind` and `pos` are on every node; the others only on the kinds
    that have them (`parts`: words, commands, lists; `list`: compounds; `type` and
    `output`: redirections) and are read only there."""

    kind: str
    pos: tuple[int, int]
    parts: list[_Node]
    list: list[_Node]
    type: str
    output: _Node | int | str


def check_commands(text: str, allowed: tuple[str, ...]) -> str | None:
    """Why `text` could run a command outside `allowed`, or None when it cannot."""
    try:
        _Checker(text, allowed).run()
    except Refused as exc:
        return str(exc)
    except RecursionError:
        return "the command line nests too deeply for the allow-list check; it is refused"
    except Exception as exc:  # a line the check mishandles is refused, never run
        return f"the allow-list check failed on this line ({type(exc).__name__}); it is refused"
    return None


def _parse(text: str) -> list[_Node]:
    import bashlex

    try:
        return list(bashlex.parse(text))
    except Exception as exc:  # any failure on untrusted text: refuse, never guess
        raise Refused(
            f"the allow-list check cannot follow this command line ({_detail(exc)}); bash"
            " might run it differently, so it is refused: write it without that construct"
        ) from None


def _detail(exc: Exception) -> str:
    """What bashlex could not handle, in a few words."""
    text = str(exc)
    construct = re.search(r"type = \{([^}]*)\}", text)
    if isinstance(exc, NotImplementedError) and construct:
        name = construct.group(1).replace(" command", "")
        return f"{_CONSTRUCTS.get(name, name)} is not supported"
    return (text.splitlines() or [type(exc).__name__])[0][:160]


class _Checker:
    def __init__(self, text: str, allowed: tuple[str, ...]) -> None:
        self.text = text
        self.allowed = allowed

    def run(self) -> None:
        if "\x00" in self.text:
            raise Refused("the command line holds a NUL byte")
        if len(self.text) > MAX_CHARS:
            raise Refused(f"the command line is over {MAX_CHARS} characters")
        if (len(self.text) - len(self.text.rstrip("\\"))) % 2:
            raise Refused("the command line ends in a backslash; remove it")
        found = _BRACE_OPEN.search(self.text)
        if found:
            raise Refused(
                f"parameter expansion at {self.text[found.start() : found.start() + 12]!r}: only"
                " plain $NAME and ${NAME} are allowed with a command allow-list"
            )
        for tree in _parse(self.text):
            self.visit(tree)

    def source(self, node: _Node) -> str:
        return self.text[node.pos[0] : node.pos[1]]

    def visit(self, node: _Node) -> None:
        kind = node.kind
        if kind in _BRANCHES:
            for part in getattr(node, "parts", ()):
                self.visit(part)
        elif kind == "compound":
            if self.text.startswith("((", node.pos[0]):
                raise Refused(f"arithmetic command {self.source(node)!r}; use expr")
            for part in [*node.list, *getattr(node, "redirects", ())]:
                self.visit(part)
        elif kind == "for":
            self.loop(node)
        elif kind == "command":
            self.command(node)
        elif kind == "redirect":
            self.redirect(node)
        elif kind == "word":
            self.word(node)
        elif kind == "function":
            raise Refused("function definitions are refused with a command allow-list")
        elif kind not in _SKIP:
            raise Refused(f"{kind} is not allowed with a command allow-list")

    def loop(self, node: _Node) -> None:
        parts = node.parts
        self.name_assigned(self.source(parts[1]), "the for loop variable")
        for part in parts[2:]:
            self.visit(part)

    def command(self, node: _Node) -> None:
        words: list[Word] = []
        for part in node.parts:
            if part.kind == "assignment" and not words:
                self.assignment(part)
            elif part.kind in ("word", "assignment"):
                words.append(self.word(part))
            elif part.kind == "redirect":
                self.redirect(part)
            else:
                raise Refused(f"{part.kind} is not allowed with a command allow-list")
        if words:
            self.name(words[0])
            check = OPTIONS.get(words[0].value or "")
            problem = check(words[1:]) if check is not None else None
            if problem is not None:
                raise Refused(problem)

    def name(self, word: Word) -> None:
        if word.value is None:
            raise Refused(
                f"the command name {word.raw!r} expands at run time; the allow-list needs"
                " the command written out"
            )
        if word.value not in self.allowed:
            raise Refused(
                f"command {word.value!r} is not on the allow-list ({', '.join(self.allowed)})"
            )
        if word.value in REFUSED:
            raise Refused(
                f"command {word.value!r} {REFUSED[word.value]}; it is refused even though"
                " the policy lists it"
            )

    def word(self, node: _Node) -> Word:
        for part in getattr(node, "parts", ()):
            if part.kind in ("commandsubstitution", "processsubstitution"):
                raise Refused(f"{part.kind} in {self.source(node)!r}")
        raw = self.source(node)
        if _FD_NAME.fullmatch(raw) and self.text[node.pos[1] : node.pos[1] + 1] in ("<", ">"):
            raise Refused(f"{raw!r} before a redirection assigns a variable; it is refused")
        return resolve(raw)

    def assignment(self, node: _Node) -> None:
        raw = self.source(node)
        found = _ASSIGNMENT.match(raw)
        if found is None:
            raise Refused(f"assignment {raw!r}: only NAME=value with a plain name is allowed")
        self.name_assigned(found.group(1), "assigning")
        resolve_value(raw[found.end() :])

    def name_assigned(self, name: str, what: str) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise Refused(f"{what} {name!r} is not a plain variable name")
        if name.upper() == name or name in _BASH_LOWER:
            raise Refused(
                f"{what} {name} is refused: names without lower-case letters are the"
                " environment's and bash's own (PATH, IFS, BASH_ENV, BASH_CMDS, LD_PRELOAD,"
                " ...) and can change what runs; use a lower-case name"
            )

    def redirect(self, node: _Node) -> None:
        if node.type in ("<<", "<<-"):
            raise Refused(
                "here-documents are refused with a command allow-list; use a here-string"
                " (<<< 'text') or printf 'text' | command"
            )
        target = node.output  # a word, a descriptor (2>&1) or "-" (closing one: 2>&-)
        if isinstance(target, str) and target != "-":
            raise Refused(f"redirection {self.source(node)!r} is not understood by the check")
        if not isinstance(target, int | str):
            self.word(target)
