"""Approval of actions whose policy says `confirm: ask` or `confirm: always`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from llmos_grammar.ir import ActionPolicy

Approver = Callable[[ActionPolicy, str], bool]


def needs_approval(policy: ActionPolicy) -> bool:
    return policy.confirm in ("ask", "always")


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
        out.write(f"--- action {policy.name!r} ({policy.handler}) wants to run:\n{text}")
        out.write("" if text.endswith("\n") else "\n")
        out.write("--- run it? [y/N] ")
        out.flush()
        answer = inp.readline().strip().lower()
        return answer in ("y", "yes")

    return approve
