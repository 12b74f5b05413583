"""Shell command lines whose command names are exactly the policy's `commands`."""

from __future__ import annotations

import json

from llmos_grammar.errors import GrammarError, Location
from llmos_grammar.ir import ActionPolicy, GrammarSource
from llmos_grammar.paths import shipped

# grammars/shell.lark with the command word replaced by CMD (its terminals are reused as they
# are: words, quoting, redirections, pipes and lists; nothing can contain "[/"). No variable
# assignments before a command: they are not commands the policy lists, `PATH=...` would
# change which program a listed name runs, and a small model drifts into endless
# assignment names (`FFFF1000...`) where a command must start.
RULES = """\
// derived from the policy's `commands` (derive: policy), on grammars/shell.lark
start: list NEWLINE?
list: pipeline (LIST_OP pipeline)* TAIL?
pipeline: command (PIPE command)*
command: CMD (BLANK (WORD | redirect))*
redirect: REDIRECT BLANK? WORD | DUP
"""


def derive(policy: ActionPolicy, where: Location) -> GrammarSource:
    if policy.commands is None:
        raise GrammarError(
            f"action {policy.name!r} allows any command: list them in `commands`, or use"
            " `grammar: shell.lark`",
            where,
        )
    if not policy.commands:
        raise GrammarError(f"action {policy.name!r} allows no command", where)
    names = " | ".join(json.dumps(c) for c in policy.commands)
    text = RULES + f"CMD: {names}\n" + terminals()
    return GrammarSource("lark", text, where, origin=f"policy:{policy.name}")


def terminals() -> str:
    """The terminal definitions of the shipped grammars/shell.lark (from NO_CLOSE on)."""
    text = (shipped("grammars") / "shell.lark").read_text(encoding="utf-8")
    return text[text.index("\nNO_CLOSE:") + 1 :]
