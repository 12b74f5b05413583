"""The package's import graph (package faces and type-only imports included) is acyclic."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "llmos_grammar"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """Every llmos_grammar name `module` imports, at any level, `TYPE_CHECKING` included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level]
                if path.name == "__init__.py":
                    anchor = module.split(".")[: len(module.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] == "llmos_grammar"}


def graph() -> dict[str, set[str]]:
    """module -> modules it makes Python run; importing a.b.c also runs the faces a.b and a."""
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for name in imported_names(module, path):
            while name and name not in known:
                name = name.rpartition(".")[0]
            while name and name != "llmos_grammar":
                if name != module and not module.startswith(name + "."):
                    edges[module].add(name)
                name = name.rpartition(".")[0]
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None (iterative depth-first search)."""
    colour: dict[str, int] = {}
    for root in sorted(edges):
        if root in colour:
            continue
        path, todo = [root], [iter(sorted(edges[root]))]
        colour[root] = 1
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                colour[path.pop()] = 2
                todo.pop()
            elif colour.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in colour:
                colour[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(edges[nxt])))
    return None


def test_the_import_graph_is_acyclic() -> None:
    assert cycle(graph()) is None, " -> ".join(cycle(graph()) or [])


def test_the_cycle_finder_finds_a_cycle_through_a_package_face() -> None:
    edges = {"p": {"p.a"}, "p.a": {"q.b", "q"}, "q": set(), "q.b": {"p"}}
    assert cycle(edges) == ["p", "p.a", "q.b", "p"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_type_only_and_relative_imports() -> None:
    edges = graph()
    assert "llmos_grammar.errors" in edges["llmos_grammar.ir"]
    assert "llmos_grammar.sandbox" in edges["llmos_grammar.actions.python"]  # package face


# What the runtime may import of the engines and the constraints: their interfaces and
# registries. An engine or a backend is reached through a registry, never by its name.
INTERFACES = {
    "llmos_grammar.engines",
    "llmos_grammar.engines.base",
    "llmos_grammar.engines.registry",
    "llmos_grammar.engines.select",
    "llmos_grammar.constraints",
    "llmos_grammar.constraints.backend",
    "llmos_grammar.constraints.mask",
    "llmos_grammar.constraints.registry",
    "llmos_grammar.constraints.tokens",
}


def named_imports(module: str, path: Path) -> set[str]:
    """The llmos_grammar modules `module` imports by name (faces not followed)."""
    known = modules()
    found = set()
    for name in imported_names(module, path):
        while name and name not in known:
            name = name.rpartition(".")[0]
        found.add(name)
    return found


def test_the_runtime_imports_no_engine_or_backend_by_name() -> None:
    wrong = {}
    for module, path in modules().items():
        if not module.startswith("llmos_grammar.runtime"):
            continue
        reached = {
            name
            for name in named_imports(module, path)
            if name.startswith(("llmos_grammar.engines", "llmos_grammar.constraints"))
        }
        if reached - INTERFACES:
            wrong[module] = sorted(reached - INTERFACES)
    assert wrong == {}


def test_the_import_check_sees_an_engine_imported_by_name(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "from llmos_grammar.engines import Engine\n"
        "def f():\n    from llmos_grammar.engines.llamacpp import LlamaCppEngine\n"
    )
    names = named_imports("llmos_grammar.runtime.m", path)
    assert "llmos_grammar.engines.llamacpp" in names and "llmos_grammar.engines" in names
