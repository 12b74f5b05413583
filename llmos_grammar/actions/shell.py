"""The `shell` handler: a command line run by bash (no profile, no rc) under the sandbox.

With `commands: [ls, cat, ...]` in the policy, every simple command's first word
must be on that list, and command substitution, process substitution, `eval`,
`exec`, `source` and redirections into command position are refused. The list
narrows what the model is asked to do; the sandbox, not the list, is the
security boundary.
"""

from __future__ import annotations

import shlex
import shutil

from llmos_grammar.actions.registry import standby_key
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult
from llmos_grammar.sandbox.probe import Capabilities
from llmos_grammar.sandbox.runner import run_argv, run_child
from llmos_grammar.sandbox.standby import StandbyPool

_SEPARATORS = {";", "&&", "||", "|", "&", "|&", ";;", "(", ")", "\n"}
_FORBIDDEN = ("$(", "`", "<(", ">(")
_NEVER = {"eval", "exec", "source", ".", "command", "builtin", "env", "xargs", "sudo"}


def _first_words(text: str) -> list[str]:
    lexer = shlex.shlex(text.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    words: list[str] = []
    expect = True
    for token in lexer:
        if token in _SEPARATORS or set(token) <= set(";&|()"):
            expect = True
        elif expect and "=" in token and not token.startswith("="):
            continue  # NAME=value prefix
        elif expect:
            words.append(token)
            expect = False
    return words


def check_commands(text: str, allowed: tuple[str, ...]) -> str | None:
    """Why `text` is outside the allow-list, or None when every command is on it."""
    for bad in _FORBIDDEN:
        if bad in text:
            return f"{bad!r} is not allowed with a command allow-list"
    try:
        words = _first_words(text)
    except ValueError as exc:
        return f"cannot parse the command line: {exc}"
    for word in words:
        if word in _NEVER or word not in allowed:
            return f"command {word!r} is not on the allow-list ({', '.join(allowed)})"
    return None


def shell_argv(policy: ActionPolicy | None = None) -> list[str]:
    """bash reading the command line from stdin, without profile or rc files (any policy)."""
    return [shutil.which("bash") or "/bin/bash", "--noprofile", "--norc", "-s"]


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
