"""The `shell` handler: a command line run by bash (no profile, no rc) under the sandbox.

bash reads the whole line from stdin first and then runs it with stdin from
/dev/null, so no command can consume the rest of the line and change what bash
parses next. With `commands: [ls, cat, ...]` in the policy the line is parsed as
bash parses it (bashlex) before it runs, and refused unless every command bash
would run has a literal name on that list and nothing could change which program
a name runs (see `shell_check`): no command, process or arithmetic substitution,
no `${...}` beyond plain `${NAME}`, no command word that expands, no functions,
here-documents or assignments to upper-case names, no commands that run other
commands (`eval`, `xargs`, `env`, shells ...: `shell_options.REFUSED`), and no
option known to run a program (`find -exec`, `sed`'s `e`, `awk`'s `system()` ...:
`shell_options.OPTIONS`). The list limits which programs start; what those
programs do with their arguments and files stays bounded by the sandbox.
"""

from __future__ import annotations

import shutil

from llmos_grammar.actions.registry import standby_key
from llmos_grammar.actions.shell_check import check_commands
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult
from llmos_grammar.sandbox.probe import Capabilities
from llmos_grammar.sandbox.runner import run_argv, run_child
from llmos_grammar.sandbox.standby import StandbyPool

__all__ = ["check_commands", "run_shell", "shell_argv"]

# Read all of stdin (up to EOF), then run it: a command reading stdin gets /dev/null.
WHOLE_LINE = 'IFS= read -r -d "" __llmos_line; eval "$__llmos_line" </dev/null'


def shell_argv(policy: ActionPolicy | None = None) -> list[str]:
    """bash reading the command line from stdin, without profile or rc files (any policy)."""
    return [shutil.which("bash") or "/bin/bash", "--noprofile", "--norc", "-c", WHOLE_LINE]


def run_shell(
    text: str,
    policy: ActionPolicy,
    caps: Capabilities | None = None,
    pool: StandbyPool | None = None,
) -> ActionResult:
    """Run `text` with bash; refuse it first when it breaks the policy's allow-list."""
    if policy.commands is not None:
        reason = check_commands(text, policy.commands)
        if reason is not None:
            return ActionResult(exit_code=None, refused=reason)
    argv = shell_argv(policy)
    if pool is not None:
        child = pool.take(standby_key(policy), argv, policy)
        if child is not None:
            return run_child(child, text.encode(), warm=True)
    return run_argv(argv, policy, stdin=text.encode(), caps=caps)
