"""Build the frozen IR of ir.py from schema-valid spec and policy documents (no checks here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmos_grammar import __version__
from llmos_grammar.errors import Location
from llmos_grammar.grammar.noclose import exclude_close
from llmos_grammar.ir import (
    ActionPolicy,
    ActionState,
    BackendChoice,
    Budgets,
    FinalState,
    GrammarKind,
    GrammarSource,
    GrammarState,
    GrammarTest,
    Machine,
    ModelRef,
    Policy,
    Prompt,
    Samples,
    Sampling,
    SessionLimits,
    State,
    TextState,
    Transition,
)
from llmos_grammar.paths import shipped
from llmos_grammar.spec.yamldoc import Doc, Key

ANY_TEXT = r"(?s:.*)"
CONSTRAINT_KEYS = ("grammar", "lark", "regex", "json_schema", "derive")
PATH_FIELDS = ("database",)
PATH_LIST_FIELDS = ("read", "write")
TUPLE_FIELDS = ("read", "write", "env", "urls", "methods", "commands", "json_fields")


def build_policy(doc: Doc) -> Policy:
    """A Policy whose relative paths are resolved against the policy's folder."""
    base = Path(doc.file).resolve().parent
    actions = {
        name: _action_policy(name, raw, base, doc.loc(("actions", name), key=True))
        for name, raw in doc.data.get("actions", {}).items()
    }
    return Policy(path=doc.file, actions=actions)


def _action_policy(name: str, raw: dict[str, Any], base: Path, where: Location) -> ActionPolicy:
    values = dict(raw)
    values.pop("description", None)
    for key in PATH_FIELDS:
        if key in values:
            values[key] = str((base / values[key]).resolve())
    for key in PATH_LIST_FIELDS:
        if key in values:
            values[key] = [str((base / p).resolve()) for p in values[key]]
    if values.get("workdir", "temporary") != "temporary":
        values["workdir"] = str((base / values["workdir"]).resolve())
    for key in TUPLE_FIELDS:
        if key in values:
            values[key] = tuple(values[key])
    return ActionPolicy(name=name, location=where, **values)


def grammar_dirs(spec_file: str) -> list[str]:
    """Folders a spec's grammar files may come from: its own, then the shipped one."""
    return [str(Path(spec_file).resolve().parent), str(shipped("grammars"))]


def constraint_source(
    doc: Doc, path: Key, raw: dict[str, Any], policy: Policy | None = None
) -> GrammarSource | None:
    """The GrammarSource a state declares, or None; file errors raise GrammarError, and so
    does a `derive: policy` with nothing to derive from."""
    from llmos_grammar import grammar

    if "derive" in raw:
        from llmos_grammar.spec.derive import derive_source

        where = doc.loc((*path, "derive"))
        return derive_source(str(path[-1]), doc.data["states"], policy, where)
    if "grammar" in raw:
        return grammar.load_source(raw["grammar"], base_dirs=grammar_dirs(doc.file))
    if "json_schema" in raw and isinstance(raw["json_schema"], str):
        return grammar.load_source(
            raw["json_schema"], "json_schema", base_dirs=grammar_dirs(doc.file)
        )
    kind: GrammarKind
    for kind in ("lark", "regex", "json_schema"):
        if kind in raw:
            value = raw[kind]
            text = value if isinstance(value, str) else json.dumps(value)
            where, offset = inline_location(doc, (*path, kind))
            return GrammarSource(kind=kind, text=text, location=where, column_offset=offset)
    return None


def inline_location(doc: Doc, path: Key) -> tuple[Location, int]:
    """Where an inline scalar's first character stands, and the indentation YAML stripped."""
    node = doc.nodes.get(path)
    start = doc.loc(path)
    if node is None:
        return start, 0
    style = getattr(node, "style", None)
    if style in ("|", ">"):
        line = node.start_mark.line + 1  # 0-based index of the first content line
        lines = doc.lines
        content = lines[line] if line < len(lines) else ""
        indent = len(content) - len(content.lstrip(" "))
        return Location(doc.file, line + 1, indent + 1), indent
    shift = 1 if style in ("'", '"') else 0
    column = node.start_mark.column + shift
    return Location(doc.file, node.start_mark.line + 1, column + 1), column


def build_state(doc: Doc, name: str, raw: dict[str, Any], source: GrammarSource | None) -> State:
    """One state; `source` is its constraint, from constraint_source()."""
    kind = raw["type"]
    if source is not None:
        source = replace(source, json_whitespace=_json_whitespace(doc, raw))
    if kind == "text":
        return TextState(
            name=name,
            triggers=transitions(raw.get("on", {})),
            on_eos=raw.get("eos"),
            constraint=source,
            max_tokens=raw.get("max_tokens"),
            sampling=_state_sampling(raw),
            backend=_backend(doc, raw),
        )
    if kind == "grammar":
        if source is None:  # any text up to the close delimiter
            source = GrammarSource(kind="regex", text=ANY_TEXT, location=doc.loc(("states", name)))
        source = exclude_close(source, raw["close"])
        return GrammarState(
            name=name,
            constraint=source,
            close=raw["close"],
            next=raw["next"],
            max_tokens=raw.get("max_tokens"),
            open=raw.get("open", ""),
            sampling=_state_sampling(raw),
            backend=_backend(doc, raw),
        )
    if kind == "action":
        return ActionState(
            name=name,
            action=raw["action"],
            input=raw["input"],
            output=raw.get("output", "{stdout}{stderr}"),
            next=raw["next"],
            on_error=raw.get("on_error"),
            error_output=raw.get("error_output"),
        )
    return FinalState(name=name)


def transitions(on: dict[str, str] | list[dict[str, Any]]) -> tuple[Transition, ...]:
    """The triggers of `on`: a mapping trigger -> state, or a list of {when, to} entries whose
    `when` is one trigger or several spellings of it, put longest first (see TextState)."""
    if isinstance(on, dict):
        return tuple(Transition(t, s, ("on", t)) for t, s in on.items())
    found: list[Transition] = []
    for i, entry in enumerate(on):
        when = entry["when"]
        if isinstance(when, str):
            found.append(Transition(when, entry["to"], ("on", i, "when")))
            continue
        spellings = [Transition(w, entry["to"], ("on", i, "when", j)) for j, w in enumerate(when)]
        found += sorted(spellings, key=lambda t: -len(t.trigger))
    return tuple(found)


def _backend(doc: Doc, raw: dict[str, Any]) -> BackendChoice:
    """The state's `backend`, else the spec's, else auto."""
    return raw.get("backend", doc.data.get("backend", "auto"))


def _json_whitespace(doc: Doc, raw: dict[str, Any]) -> str:
    """The state's `json_whitespace`, else the spec's, else compact."""
    return str(raw.get("json_whitespace", doc.data.get("json_whitespace", "compact")))


def _state_sampling(raw: dict[str, Any]) -> Sampling | None:
    return Sampling(**raw["sampling"]) if "sampling" in raw else None


def build_machine(doc: Doc, states: dict[str, State], policy: Policy, policy_text: str) -> Machine:
    data = doc.data
    model = data.get("model", {})
    model_ref = ModelRef(name=model) if isinstance(model, str) else ModelRef(**model)
    tests = tuple(
        GrammarTest(state, tuple(t.get("accept", ())), tuple(t.get("reject", ())))
        for state, t in data.get("tests", {}).items()
    )
    return Machine(
        name=data.get("name", Path(doc.file).parent.name or Path(doc.file).stem),
        path=doc.file,
        start=data["start"],
        states=states,
        policy=policy,
        model=model_ref,
        prompt=Prompt(**data.get("prompt", {})),
        sampling=Sampling(**data.get("sampling", {})),
        budgets=Budgets(**data.get("limits", {})),
        engine=data.get("engine", "auto"),
        samples=Samples(**data.get("samples", {})),
        session=SessionLimits(**data.get("session", {})),
        tests=tests,
        description=data.get("description", ""),
        cache_key=cache_key(doc.text, policy_text, states),
    )


def cache_key(spec_text: str, policy_text: str, states: dict[str, State]) -> str:
    digest = hashlib.sha256()
    for part in (__version__, spec_text, policy_text):
        digest.update(part.encode())
        digest.update(b"\0")
    for state in states.values():
        source = getattr(state, "constraint", None)
        if source is not None:
            digest.update(source.text.encode())
            digest.update(b"\0")
    return digest.hexdigest()[:16]
