"""The state diagram drawn as inline SVG: layers from the start state, edges as curves."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from html import escape

from llmos_grammar.viewer.graph_data import Edge, Node, StateGraph

CHAR_W = 7.0  # px per character of the 12 px monospace labels
LINE_H = 15.0
PAD_X, PAD_Y = 12.0, 8.0
LAYER_GAP, NODE_GAP, MARGIN = 56.0, 36.0, 24.0
ARC = 40.0  # how much further out each arc round the side goes
NAME = ' class="name"'  # the first line of a label: the state's name


@dataclass(frozen=True)
class Box:
    x: float  # centre
    y: float  # top
    w: float
    h: float

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def right(self) -> float:
        return self.x + self.w / 2


def diagram_svg(
    graph: StateGraph,
    visited: Collection[str] = (),
    taken: Collection[tuple[str, str]] = (),
) -> str:
    """The graph as an `<svg>` element; `visited` states and `taken` (source, target) edges
    are drawn as the run went."""
    layers, back = _layers(graph)
    boxes = _place(graph, layers)
    rank = {name: i for i, layer in enumerate(layers) for name in layer}
    routes = _Routes(boxes, rank, back)
    drawn = [
        _edge(edge, routes, (edge.source, edge.target) in taken)
        for edge in graph.edges
        if edge.source in boxes and edge.target in boxes
    ]
    width = routes.right + ARC * (routes.sides["right"] + 1) + MARGIN
    height = max((b.bottom for b in boxes.values()), default=0.0) + MARGIN
    shift = ARC * routes.sides["left"]  # room for the arcs on the left
    parts = [
        f'<svg class="diagram" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="state diagram" width="{width + shift:.0f}" height="{height:.0f}" '
        f'viewBox="{-shift:.0f} 0 {width + shift:.0f} {height:.0f}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
    ]
    start = boxes.get(graph.start)
    if start is not None:
        parts.append(
            f'<circle class="start" cx="{start.x:.1f}" cy="{start.y - 22:.1f}" r="5"/>'
            f'<g class="edge"><path d="M{start.x:.1f},{start.y - 17:.1f} V{start.y:.1f}" '
            'marker-end="url(#arrow)"/></g>'
        )
    parts += drawn
    parts += [_node(node, boxes[node.name], node.name in visited) for node in graph.nodes]
    parts.append("</svg>")
    return "".join(parts)


def _layers(graph: StateGraph) -> tuple[list[list[str]], set[tuple[str, str]]]:
    """States in layers by the longest way from the start, leaving out the edges that lead
    back (found depth first); unreachable states last. Returns the layers and those edges."""
    names = [n.name for n in graph.nodes]
    out: dict[str, list[str]] = {n: [] for n in names}
    for edge in graph.edges:
        if edge.source in out and edge.target in out:
            out[edge.source].append(edge.target)
    order: list[str] = []  # depth-first finishing order
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str) -> None:
        state[name] = 1
        for target in out[name]:
            if state.get(target) == 1:
                back.add((name, target))
            elif target not in state:
                visit(target)
        state[name] = 2
        order.append(name)

    if graph.start in out:
        visit(graph.start)
    depth: dict[str, int] = {}
    for name in reversed(order):  # a topological order of the edges that lead on
        depth.setdefault(name, 0)
        for target in out[name]:
            if (name, target) not in back and target != name:
                depth[target] = max(depth.get(target, 0), depth[name] + 1)
    last = max(depth.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(last + 1)]
    seen = list(reversed(order))
    for name in sorted(names, key=lambda n: (depth.get(n, last), _index(seen, names, n))):
        layers[depth.get(name, last)].append(name)
    return [layer for layer in layers if layer], back


def _index(seen: list[str], names: list[str], name: str) -> int:
    return seen.index(name) if name in seen else len(seen) + names.index(name)


def _place(graph: StateGraph, layers: list[list[str]]) -> dict[str, Box]:
    nodes = {n.name: n for n in graph.nodes}
    sizes = {name: _size(node) for name, node in nodes.items()}
    widths = [sum(sizes[n][0] for n in layer) + NODE_GAP * (len(layer) - 1) for layer in layers]
    full = max(widths, default=0.0)
    boxes: dict[str, Box] = {}
    y = MARGIN + 24.0  # room for the start dot
    for layer, row_w in zip(layers, widths, strict=True):
        x = MARGIN + (full - row_w) / 2
        tallest = max(sizes[n][1] for n in layer)
        for name in layer:
            w, h = sizes[name]
            boxes[name] = Box(x + w / 2, y + (tallest - h) / 2, w, h)
            x += w + NODE_GAP
        y += tallest + LAYER_GAP
    return boxes


def _size(node: Node) -> tuple[float, float]:
    longest = max((len(line) for line in node.label), default=1)
    w = longest * CHAR_W + 2 * PAD_X + (16.0 if node.type == "action" else 0.0)
    return max(w, 48.0), len(node.label) * LINE_H + 2 * PAD_Y


class _Routes:
    """Where edges go: one layer down as a curve; longer ones round the left side, those
    that lead back round the right, each arc a step further out than the last."""

    def __init__(
        self, boxes: dict[str, Box], rank: dict[str, int], back: set[tuple[str, str]]
    ) -> None:
        self.boxes, self.rank, self.back = boxes, rank, back
        self.left = min((b.x - b.w / 2 for b in boxes.values()), default=0.0)
        self.right = max((b.right for b in boxes.values()), default=0.0)
        self.sides = {"left": 0, "right": 0}

    def path(self, source: str, target: str) -> tuple[str, float, float]:
        """The SVG path of an edge and where its label goes."""
        a, b = self.boxes[source], self.boxes[target]
        down = self.rank[target] - self.rank[source]
        if down == 1 and (source, target) not in self.back:
            x1, y1, x2, y2 = a.x, a.bottom, b.x, b.y
            mid = (y1 + y2) / 2
            d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
            return d, (x1 + x2) / 2, mid
        side = "left" if down > 1 and (source, target) not in self.back else "right"
        self.sides[side] += 1
        y1, y2 = a.y + a.h / 2, b.y + b.h / 2
        if source == target:
            y1, y2 = a.y + a.h * 0.3, a.y + a.h * 0.7
        if side == "left":
            x1, x2 = a.x - a.w / 2, b.x - b.w / 2
            out = self.left - ARC * self.sides[side]
        else:
            x1, x2 = a.right, b.right
            out = self.right + ARC * self.sides[side]
        d = f"M{x1:.1f},{y1:.1f} C{out:.1f},{y1:.1f} {out:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        return d, x1 + (out - x1) * 0.75, (y1 + y2) / 2


def _node(node: Node, box: Box, visited: bool) -> str:
    left, top, w, h = box.x - box.w / 2, box.y, box.w, box.h
    cls = f"node {escape(node.type)}{' visited' if visited else ''}"
    if node.type == "action":
        d = 8.0
        pts = [
            (left, top + h / 2),
            (left + d, top),
            (left + w - d, top),
            (left + w, top + h / 2),
            (left + w - d, top + h),
            (left + d, top + h),
        ]
        shape = '<polygon points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>'
    else:
        radius = {"text": h / 2, "final": h / 2, "grammar": 2.0}.get(node.type, 6.0)
        shape = (
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'rx="{radius:.1f}"/>'
        )
        if node.type in ("grammar", "final"):
            shape += (
                f'<rect class="inner" x="{left + 3:.1f}" y="{top + 3:.1f}" width="{w - 6:.1f}" '
                f'height="{h - 6:.1f}" rx="{max(radius - 3, 1):.1f}"/>'
            )
    lines = "".join(
        f'<tspan x="{box.x:.1f}" y="{top + PAD_Y + LINE_H * (i + 0.8):.1f}"'
        f"{NAME if i == 0 else ''}>{escape(line)}</tspan>"
        for i, line in enumerate(node.label)
    )
    title = f"<title>{escape(node.name)} ({escape(node.type)})</title>"
    head = f'<g class="{cls}" data-state="{escape(node.name)}">{title}'
    return f"{head}{shape}<text>{lines}</text></g>"


def _edge(edge: Edge, routes: _Routes, hot: bool) -> str:
    d, lx, ly = routes.path(edge.source, edge.target)
    cls = "edge taken" if hot else "edge"
    label = ""
    if edge.label:
        w = len(edge.label) * 6.6 + 8
        label = (
            f'<rect class="label-bg" x="{lx - w / 2:.1f}" y="{ly - 8:.1f}" width="{w:.1f}" '
            f'height="15" rx="3"/><text class="label" x="{lx:.1f}" y="{ly + 3.5:.1f}">'
            f"{escape(edge.label)}</text>"
        )
    title = f"<title>{escape(edge.source)} → {escape(edge.target)}: {escape(edge.label)}</title>"
    return (
        f'<g class="{cls}" data-edge="{escape(edge.source)}>{escape(edge.target)}">{title}'
        f'<path d="{d}" marker-end="url(#arrow)"/>{label}</g>'
    )
