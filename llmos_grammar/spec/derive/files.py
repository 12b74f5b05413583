"""`files` commands (see actions/files.py) over paths under the policy's `read` folders."""

from __future__ import annotations

import re

from llmos_grammar.errors import GrammarError, Location
from llmos_grammar.ir import ActionPolicy, GrammarSource

# one path component: no leading dot (so never "." or ".."), no "/" and no blanks
SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
RELATIVE = f"{SEGMENT}(?:/{SEGMENT})*"


def derive(policy: ActionPolicy, where: Location) -> GrammarSource:
    """`list [PATH]` and `read PATH`: PATH relative to the first folder, or absolute under one
    of the folders; `write`/`append` are not derived (the state writes one-line commands)."""
    roots = [*policy.read, *policy.write]
    if not roots:
        raise GrammarError(f"action {policy.name!r} allows no folders (`read`)", where)
    absolute = [f"{re.escape(root.rstrip('/'))}(?:/{RELATIVE})?" for root in roots]
    path = "(?:" + "|".join([RELATIVE, *absolute]) + ")"
    return GrammarSource(
        "regex", f"list(?: {path})?|read {path}", where, origin=f"policy:{policy.name}"
    )
