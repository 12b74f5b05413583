"""The examples page: a table of the shipped examples and each one's state machine as a
Mermaid diagram, both from the specs themselves (`llmos-graph`'s own code)."""

from __future__ import annotations

from pathlib import Path

from llmos_docs.table import code, table

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def specs() -> list[Path]:
    return sorted(EXAMPLES.glob("*/spec.yaml"))


def _handlers(machine: object) -> str:
    from llmos_grammar.ir import ActionState, Machine

    assert isinstance(machine, Machine)
    policy = machine.policy
    names = {s.action for s in machine.states.values() if isinstance(s, ActionState)}
    handlers = sorted({policy.actions[n].handler for n in names if policy and n in policy.actions})
    return ", ".join(handlers) or "–"


def table_md() -> str:
    from llmos_grammar.spec.loader import load

    rows = []
    for spec in specs():
        machine = load(spec)
        name = spec.parent.name
        rows.append([f"[{code(name)}](#{name})", _handlers(machine), machine.description])
    return table(["example", "handlers", "what it does"], rows)


def diagrams_md() -> str:
    from llmos_grammar import graph
    from llmos_grammar.spec.loader import load

    out = []
    for spec in specs():
        machine = load(spec)
        name = spec.parent.name
        out.append(f"## {name}\n")
        if machine.description:
            out.append(machine.description + "\n")
        out.append(f"`llmos-graph examples/{name}/spec.yaml`:\n")
        out.append(f"````mermaid\n{graph.mermaid(machine).rstrip()}\n````\n")
    return "\n".join(out)
