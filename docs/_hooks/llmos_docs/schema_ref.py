"""The spec and policy reference: every key of the shipped JSON schemas, with its type,
its default (from the compiled form's dataclasses) and its description."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos_docs.table import code, table

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "llmos_grammar" / "spec" / "schema"

Node = dict[str, Any]


@dataclass(frozen=True)
class Key:
    """One key of a schema: where it sits, its node (references followed) and whether
    it is required."""

    path: str
    name: str
    node: Node
    raw: Node
    required: bool
    owner: str  # the $defs name of the object that holds it ("" for the top level)


@dataclass(frozen=True)
class Section:
    """One object of a schema: its path (`states.NAME`), its keys."""

    path: str
    title: str
    keys: list[Key] = field(default_factory=list)


def load(kind: str) -> Node:
    schema: Node = json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8"))
    return schema


def resolve(schema: Node, node: Node) -> tuple[Node, str]:
    """Follow `$ref`s; the node and the name of the last definition reached."""
    name = ""
    while "$ref" in node:
        parts = node["$ref"].removeprefix("#/").split("/")
        name = parts[1] if parts[0] == "$defs" and len(parts) == 2 else name
        target: Node = schema
        for part in parts:
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node, name


def description(schema: Node, node: Node) -> str:
    """A key's description: its own, else that of what it refers to."""
    if node.get("description"):
        return str(node["description"])
    if "$ref" in node:
        return description(schema, resolve(schema, {"$ref": node["$ref"]})[0])
    return ""


def _objects(schema: Node, node: Node, path: str, owner: str) -> Iterator[tuple[Node, str, str]]:
    """Every object schema reachable from `node`: (node, path, its $defs name)."""
    node, name = resolve(schema, node)
    owner = name or owner
    if "properties" in node:
        yield node, path, owner
        for key, child in node["properties"].items():
            yield from _objects(schema, child, f"{path}.{key}" if path else key, "")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _objects(schema, extra, f"{path}.NAME", "")
    if isinstance(node.get("items"), dict):
        yield from _objects(schema, node["items"], f"{path}[]", "")
    for variant in node.get("oneOf", []) + node.get("anyOf", []):
        yield from _objects(schema, variant, path, owner)


def sections(kind: str) -> list[Section]:
    """The objects of a schema in reading order, each with its keys; an object that
    several `$ref`s reach (a state's sampling) once, at its first path."""
    schema = load(kind)
    found: list[Section] = []
    seen: set[int] = set()
    for node, path, owner in _objects(schema, schema, "", ""):
        if id(node["properties"]) in seen or "oneOf" in node:
            continue  # seen, or a discriminator whose variants are sections of their own
        seen.add(id(node["properties"]))
        required = set(node.get("required", []))
        keys = [
            Key(path, name, resolve(schema, raw)[0], raw, name in required, owner)
            for name, raw in node["properties"].items()
        ]
        kind_const = node["properties"].get("type", {}).get("const")
        title = f"`{path}`" if path else "top level"
        if kind_const:
            title += f" with `type: {kind_const}`"
        found.append(Section(path, title, keys))
    return found


def undocumented(kind: str) -> list[str]:
    """Every key of a schema without a description."""
    schema = load(kind)
    return [
        f"{kind}: {s.path + '.' if s.path else ''}{k.name}"
        for s in sections(kind)
        for k in s.keys
        if not description(schema, k.raw).strip()
    ]


def type_of(schema: Node, node: Node) -> str:
    node, _ = resolve(schema, node)
    if "const" in node:
        return code(json.dumps(node["const"]))
    if "enum" in node:
        return ", ".join(code(str(v)) for v in node["enum"])
    variants = node.get("oneOf") or node.get("anyOf")
    if variants:
        return " or ".join(type_of(schema, v) for v in variants)
    kind = node.get("type", "")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"list of {type_of(schema, node['items'])}"
    if kind == "object" and "properties" not in node and node.get("additionalProperties"):
        return "mapping"
    return str(kind or "any")


# The compiled form's dataclass that holds each object's defaults, by $defs name.
def _defaults() -> dict[str, Any]:
    from llmos_grammar import ir

    return {
        "": ir.Machine,
        "model": ir.ModelRef,
        "prompt": ir.Prompt,
        "sampling": ir.Sampling,
        "limits": ir.Budgets,
        "samples": ir.Samples,
        "session": ir.SessionLimits,
        "text_state": ir.TextState,
        "grammar_state": ir.GrammarState,
        "action_state": ir.ActionState,
        "grammar_tests": ir.GrammarTest,
        "action": ir.ActionPolicy,
        "policy:": ir.Policy,
    }


def default(kind: str, key: Key) -> str:
    if key.required:
        return "required"
    owner = "policy:" if kind == "policy" and not key.owner else key.owner
    cls = _defaults().get(owner)
    if cls is None or not dataclasses.is_dataclass(cls):
        return ""
    for f in dataclasses.fields(cls):
        if f.name == key.name and f.default is not dataclasses.MISSING:
            value = f.default
            if value is None or value == "" or value == ():
                return ""
            if isinstance(value, tuple):
                return code(json.dumps(list(value)))
            return code(json.dumps(value))
    return ""


def render(kind: str) -> str:
    schema = load(kind)
    out = []
    for section in sections(kind):
        rows = [
            [code(k.name), type_of(schema, k.raw), default(kind, k), description(schema, k.raw)]
            for k in section.keys
        ]
        out.append(f"### {section.title}\n")
        out.append(table(["key", "type", "default", "description"], rows))
    return "\n".join(out)
