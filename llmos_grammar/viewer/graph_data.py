"""The state diagram as data: the nodes and edges `llmos-graph` draws, kept in a trace's header."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from llmos_grammar.errors import TraceError
from llmos_grammar.graph import describe, edge_label
from llmos_grammar.ir import Machine
from llmos_grammar.spec.checks.machine import edges


@dataclass(frozen=True)
class Node:
    name: str
    type: str  # text, grammar, action or final
    label: tuple[str, ...]  # its lines, as llmos-graph labels the state


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str  # the trigger, close, eos, ok or error ("" for a plain next)


@dataclass(frozen=True)
class StateGraph:
    start: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def types(self) -> dict[str, str]:
        """Each state's type by name."""
        return {n.name: n.type for n in self.nodes}

    def to_json(self) -> dict[str, object]:
        return {
            "start": self.start,
            "nodes": [[n.name, n.type, list(n.label)] for n in self.nodes],
            "edges": [[e.source, e.target, e.label] for e in self.edges],
        }


def state_graph(machine: Machine) -> StateGraph:
    """The machine's states and ways out, labelled as `llmos-graph` labels them."""
    nodes = tuple(
        Node(name, state.type, tuple(describe(machine, state).split("\n")))
        for name, state in machine.states.items()
    )
    out = tuple(
        Edge(name, target, edge_label(state, path))
        for name, state in machine.states.items()
        for path, target in edges(state)
    )
    return StateGraph(machine.start, nodes, out)


def graph_from_json(data: object) -> StateGraph:
    """The graph `StateGraph.to_json` wrote (a trace header's `graph`); TraceError if not."""
    if not isinstance(data, Mapping):
        raise TraceError("the header's `graph` is not an object")
    start, nodes, links = data.get("start"), data.get("nodes"), data.get("edges")
    if not isinstance(start, str) or not isinstance(nodes, list) or not isinstance(links, list):
        raise TraceError("the header's `graph` needs `start`, `nodes` and `edges`")
    return StateGraph(start, tuple(_node(n) for n in nodes), tuple(_edge(e) for e in links))


def _node(value: object) -> Node:
    if (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and isinstance(value[1], str)
        and isinstance(value[2], list)
    ):
        return Node(value[0], value[1], tuple(str(line) for line in value[2]))
    raise TraceError("a graph node must be [name, type, [label lines]]")


def _edge(value: object) -> Edge:
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value):
        return Edge(value[0], value[1], value[2])
    raise TraceError("a graph edge must be [source, target, label]")
