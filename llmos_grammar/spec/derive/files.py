"""`files` commands (see actions/files.py) over paths under the policy's `read` folders."""

from __future__ import annotations

import os
import re

from llmos_grammar.errors import GrammarError, Location
from llmos_grammar.ir import ActionPolicy, GrammarSource

# one path component: no leading dot (so never "." or ".."), no "/" and no blanks
SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
RELATIVE = f"{SEGMENT}(?:/{SEGMENT})*"
MAX_LISTED = 256  # read-only folders with more files than this get the path pattern


def derive(policy: ActionPolicy, where: Location) -> GrammarSource:
    """`list [PATH]` and `read PATH`: PATH relative to the first folder, or absolute under one
    of the folders; `write`/`append` are not derived (the state writes one-line commands).

    When every folder is read-only, `read` names exactly the files they hold now (at most
    MAX_LISTED; read at check and load time, so the grammar follows the folders), and the
    model cannot ask for a file that is not there.
    """
    roots = [*policy.read, *policy.write]
    if not roots:
        raise GrammarError(f"action {policy.name!r} allows no folders (`read`)", where)
    absolute = [f"{re.escape(root.rstrip('/'))}(?:/{RELATIVE})?" for root in roots]
    path = "(?:" + "|".join([RELATIVE, *absolute]) + ")"
    readable = path
    listed = [] if policy.write else existing_files(roots)
    if 0 < len(listed) <= MAX_LISTED:
        readable = "(?:" + "|".join(re.escape(name) for name in listed) + ")"
    return GrammarSource(
        "regex", f"list(?: {path})?|read {readable}", where, origin=f"policy:{policy.name}"
    )


def existing_files(roots: list[str]) -> list[str]:
    """The files under `roots` as the handler accepts them: relative to the first root,
    absolute under the others; hidden names and names the path pattern cannot spell are
    skipped. Stops after MAX_LISTED + 1 names."""
    segment = re.compile(SEGMENT)
    names: list[str] = []
    for index, root in enumerate(roots):
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if segment.fullmatch(d))
            for name in sorted(f for f in files if segment.fullmatch(f)):
                full = os.path.join(folder, name)
                names.append(os.path.relpath(full, root) if index == 0 else full)
                if len(names) > MAX_LISTED:
                    return names
    return names
