"""A run's page: its trace drawn as text marked by origin, state bands, action cards, header."""

from __future__ import annotations

from html import escape
from pathlib import Path

from llmos_grammar.errors import LlmosError
from llmos_grammar.runtime.events import TransitionEvent
from llmos_grammar.trace import Trace
from llmos_grammar.viewer.diagram import diagram_svg
from llmos_grammar.viewer.graph_data import StateGraph, graph_from_json, state_graph
from llmos_grammar.viewer.page import document, run_body
from llmos_grammar.viewer.run_view import RunView, run_view
from llmos_grammar.visible import visible


def trace_graph(trace: Trace) -> tuple[StateGraph | None, str]:
    """The state graph of the trace's header, else of the spec it names (a trace of 0.2), and
    a note on what the diagram shows ("" when it is the run's own)."""
    header = trace.header
    if "graph" in header:
        try:
            return graph_from_json(header["graph"]), ""
        except LlmosError as exc:
            return None, f"no state diagram: {exc.message}"
    spec = header.get("spec")
    if not isinstance(spec, str) or not Path(spec).is_file():
        return None, "no state diagram: the trace names no spec file found here"
    from llmos_grammar.spec import load

    try:
        machine = load(spec)
    except LlmosError as exc:
        return None, f"no state diagram: {spec} does not load ({exc.message})"
    note = f"the diagram is {spec} as it is now"
    if header.get("spec_key") not in (None, machine.cache_key):
        note += "; the spec has changed since this run"
    return state_graph(machine), note


def run_html(trace: Trace, graph: StateGraph | None = None) -> str:
    """The page of `trace` (`graph`: the machine's, else the trace's own or its spec's)."""
    note = ""
    if graph is None:
        graph, note = trace_graph(trace)
    view = run_view(trace, graph)
    return document(
        _title(trace),
        _subtitle(trace),
        run_body(),
        {"kind": "run", "run": view.to_json()},
        side(view, trace, graph, note),
    )


def side(view: RunView, trace: Trace, graph: StateGraph | None, note: str) -> str:
    """The diagram with the states the run visited and the transitions it took, and a note."""
    html = f'<p class="note">{escape(note)}</p>' if note else ""
    if graph is None:
        return html
    visited = {band.state for band in view.bands}
    taken = {(e.source, e.target) for e in trace.events if isinstance(e, TransitionEvent)}
    return diagram_svg(graph, visited, taken) + html


def _title(trace: Trace) -> str:
    spec = trace.header.get("spec")
    name = Path(spec).parent.name or Path(spec).name if isinstance(spec, str) else "a run"
    return f"llmos run: {visible(name)}"


def _subtitle(trace: Trace) -> str:
    task = trace.header.get("task")
    return visible(task) if isinstance(task, str) else ""
