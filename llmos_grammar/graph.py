"""Render a compiled machine as a Mermaid or Graphviz DOT diagram."""

from __future__ import annotations

import json

from llmos_grammar.ir import ActionState, GrammarState, Machine, State, TextState
from llmos_grammar.spec.checks.machine import edges

SHAPES_MERMAID = {
    "text": ('(["', '"])'),
    "grammar": ('[["', '"]]'),
    "action": ('{{"', '"}}'),
    "final": ('(("', '"))'),
}
SHAPES_DOT = {"text": "ellipse", "grammar": "box", "action": "hexagon", "final": "doublecircle"}


def describe(machine: Machine, state: State) -> str:
    """A short label: the state's name, type and what constrains or runs it."""
    if isinstance(state, GrammarState):
        return f"{state.name}\ngrammar: {_source(state)}\nclose {state.close}"
    if isinstance(state, TextState):
        extra = f"\n{state.constraint.kind}" if state.constraint else ""
        return f"{state.name}\ntext{extra}"
    if isinstance(state, ActionState):
        policy = machine.policy.actions.get(state.action)
        handler = policy.handler if policy else "?"
        return f"{state.name}\naction: {state.action} ({handler})"
    return f"{state.name}\nfinal"


def _source(state: GrammarState) -> str:
    origin = state.constraint.origin
    return origin.rsplit("/", 1)[-1] if origin else f"inline {state.constraint.kind}"


def edge_label(state: State, path: tuple[str | int, ...]) -> str:
    if path[0] == "on" and isinstance(path[1], int) and isinstance(state, TextState):
        entry = path[1]  # the list form: every trigger of that entry
        written = sorted(
            (t for t in state.triggers if t.path[1:2] == (entry,)), key=lambda t: t.path
        )
        return " | ".join(t.trigger for t in written)
    if path[0] == "on":
        return str(path[1])
    if path[0] == "eos":
        return "eos"
    if isinstance(state, GrammarState):
        return state.close
    if path[0] == "on_error":
        return "error"
    return "ok" if isinstance(state, ActionState) and state.on_error else ""


def mermaid(machine: Machine) -> str:
    lines = ["flowchart TD"]
    lines.append(f"    __start(( )) --> {_id(machine.start)}")
    for name, state in machine.states.items():
        left, right = SHAPES_MERMAID[state.type]
        label = describe(machine, state).replace('"', "#quot;").replace("\n", "<br/>")
        lines.append(f"    {_id(name)}{left}{label}{right}")
    for name, state in machine.states.items():
        for path, target in edges(state):
            label = edge_label(state, path).replace('"', "#quot;")
            arrow = f' -- "{label}" --> ' if label else " --> "
            lines.append(f"    {_id(name)}{arrow}{_id(target)}")
    lines += [f"    class {_id(n)} {s.type}" for n, s in machine.states.items()]
    lines += [
        "    classDef grammar fill:#e8f0fe,stroke:#1a73e8",
        "    classDef action fill:#fef7e0,stroke:#f9ab00",
        "    classDef final fill:#e6f4ea,stroke:#188038",
    ]
    return "\n".join(lines) + "\n"


def dot(machine: Machine) -> str:
    lines = [f"digraph {json.dumps(machine.name)} {{", "    rankdir=TB;"]
    lines.append('    __start [shape=point, label=""];')
    lines.append(f"    __start -> {json.dumps(machine.start)};")
    for name, state in machine.states.items():
        label = json.dumps(describe(machine, state))
        lines.append(f"    {json.dumps(name)} [shape={SHAPES_DOT[state.type]}, label={label}];")
    for name, state in machine.states.items():
        for path, target in edges(state):
            label = json.dumps(edge_label(state, path))
            lines.append(f"    {json.dumps(name)} -> {json.dumps(target)} [label={label}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _id(name: str) -> str:
    return "s_" + "".join(c if c.isalnum() else "_" for c in name)
