"""`/limits` in the shell: the policy's actions, the budgets of a turn, the context used."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos_grammar.runtime.session import Session

FIELDS = ("timeout_s", "cpu_s", "memory_mb", "output_bytes", "processes", "network", "workdir")


def describe(session: Session) -> str:
    """Lines that show every limit in force for the session's next turn."""
    machine = session.machine
    budgets = session.rt.budgets
    lines = [
        f"policy {machine.policy.path}",
        f"turn: {budgets.max_tokens} tokens, {budgets.max_actions} action(s), {budgets.wall_s:g} s",
        f"context: {session.context_tokens}/{session.max_context} tokens, "
        f"{len(session.turns)} turn(s), {session.reserve} kept for a reply",
    ]
    for name, ap in sorted(machine.policy.actions.items()):
        limits = ", ".join(f"{f}={getattr(ap, f)}" for f in FIELDS)
        extra = []
        if ap.commands is not None:
            extra.append(f"commands={','.join(ap.commands)}")
        if ap.read:
            extra.append(f"read={','.join(ap.read)}")
        if ap.persistent:
            extra.append("persistent")
        extra.append(f"confirm={ap.confirm}")
        lines.append(f"  {name} ({ap.handler}): {limits}, {', '.join(extra)}")
    return "\n".join(lines)
