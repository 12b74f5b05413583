"""Approval of actions whose policy says `confirm: ask` or `confirm: always`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.visible import escaped_note, visible

Approver = Callable[[ActionPolicy, str], bool]


def needs_approval(policy: ActionPolicy) -> bool:
    return policy.confirm in ("ask", "always")


def approval_prompt(policy: ActionPolicy, text: str) -> str:
    """What the person is asked: every line of `text` numbered, with control and invisible
    characters shown as escapes, its size, and a note when anything was escaped.

    Nothing in `text` can act on the terminal (an escape sequence that erases the line
    and writes harmless code over a command shows as `\\x1b[2K...`), and the line count
    and length tell of a tail pushed out of sight.
    """
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    width = len(str(len(lines)))
    body = "".join(f"{n:>{width}} | {visible(line)}\n" for n, line in enumerate(lines, 1))
    end = "" if text.endswith("\n") or not text else ", no newline at the end"
    size = f"{len(lines)} line(s), {len(text)} character(s){end}"
    head = f"--- action {policy.name!r} ({policy.handler}) wants to run {size}:\n"
    note = escaped_note(text)
    note_line = f"--- {note}; they are part of what runs\n" if note else ""
    return f"{visible(head)}{body}{note_line}--- run it? [y/N] "


def terminal_approver(
    yes: bool, stdin: TextIO | None = None, stderr: TextIO | None = None
) -> Approver:
    """An approver for the CLI: ask on the terminal, showing the code first.

    `yes` approves `confirm: ask` actions without asking; `confirm: always`
    actions are asked about every time regardless. With no terminal on stdin
    the answer is no (the model is told the action was refused).
    """

    def approve(policy: ActionPolicy, text: str) -> bool:
        if yes and policy.confirm != "always":
            return True
        inp = stdin if stdin is not None else sys.stdin
        out = stderr if stderr is not None else sys.stderr
        if inp is None or not inp.isatty():
            return False
        out.write(approval_prompt(policy, text))
        out.flush()
        answer = inp.readline().strip().lower()
        return answer in ("y", "yes")

    return approve
