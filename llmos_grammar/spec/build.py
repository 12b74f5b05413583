"""Build the frozen IR of ir.py from schema-valid spec and policy documents (no checks here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import get_args

from llmos_grammar import __version__
from llmos_grammar.errors import Location
from llmos_grammar.grammar.noclose import exclude_close
from llmos_grammar.ir import (
    ActionPolicy,
    ActionState,
    BackendChoice,
    Budgets,
    EngineChoice,
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
from llmos_grammar.spec.yamldata import (
    YamlMap,
    YamlValue,
    choice,
    from_data,
    items,
    mapping,
    maybe_int,
    maybe_text,
    text,
    texts,
)
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
        name: _action_policy(name, mapping(raw), base, doc.loc(("actions", name), key=True))
        for name, raw in mapping(doc.top.get("actions")).items()
    }
    return Policy(path=doc.file, actions=actions)


def _action_policy(name: str, raw: YamlMap, base: Path, where: Location) -> ActionPolicy:
    values: dict[str, object] = dict(raw)
    values.pop("description", None)
    for key in PATH_FIELDS:
        if key in raw:
            values[key] = str((base / text(raw[key])).resolve())
    for key in PATH_LIST_FIELDS:
        if key in raw:
            values[key] = [str((base / p).resolve()) for p in texts(raw[key])]
    workdir = text(raw.get("workdir"), "temporary")
    if workdir != "temporary":
        values["workdir"] = str((base / workdir).resolve())
    for key in TUPLE_FIELDS:
        if key in values:
            values[key] = tuple(items(values[key]))
    return from_data(ActionPolicy, values, name=name, location=where)


def grammar_dirs(spec_file: str) -> list[str]:
    """Folders a spec's grammar files may come from: its own, then the shipped one."""
    return [str(Path(spec_file).resolve().parent), str(shipped("grammars"))]


def constraint_source(
    doc: Doc, path: Key, raw: YamlMap, policy: Policy | None = None
) -> GrammarSource | None:
    """The GrammarSource a state declares, or None; file errors raise GrammarError, and so
    does a `derive: policy` with nothing to derive from."""
    from llmos_grammar import grammar

    if "derive" in raw:
        from llmos_grammar.spec.derive import derive_source

        where = doc.loc((*path, "derive"))
        return derive_source(str(path[-1]), mapping(doc.top.get("states")), policy, where)
    if "grammar" in raw:
        return grammar.load_source(text(raw["grammar"]), base_dirs=grammar_dirs(doc.file))
    if "json_schema" in raw and isinstance(raw["json_schema"], str):
        return grammar.load_source(
            raw["json_schema"], "json_schema", base_dirs=grammar_dirs(doc.file)
        )
    kind: GrammarKind
    for kind in ("lark", "regex", "json_schema"):
        if kind in raw:
            value = raw[kind]
            body = value if isinstance(value, str) else json.dumps(value)
            where, offset = inline_location(doc, (*path, kind))
            return GrammarSource(kind=kind, text=body, location=where, column_offset=offset)
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


def build_state(doc: Doc, name: str, raw: YamlMap, source: GrammarSource | None) -> State:
    """One state; `source` is its constraint, from constraint_source()."""
    kind = raw["type"]
    if source is not None:
        source = replace(source, json_whitespace=_json_whitespace(doc, raw))
    if kind == "text":
        return TextState(
            name=name,
            triggers=transitions(raw.get("on", {})),
            on_eos=maybe_text(raw.get("eos")),
            constraint=source,
            max_tokens=maybe_int(raw.get("max_tokens")),
            sampling=_state_sampling(raw),
            backend=_backend(doc, raw),
        )
    if kind == "grammar":
        if source is None:  # any text up to the close delimiter
            source = GrammarSource(kind="regex", text=ANY_TEXT, location=doc.loc(("states", name)))
        close = text(raw["close"])
        return GrammarState(
            name=name,
            constraint=exclude_close(source, close),
            close=close,
            next=text(raw["next"]),
            max_tokens=maybe_int(raw.get("max_tokens")),
            open=text(raw.get("open")),
            sampling=_state_sampling(raw),
            backend=_backend(doc, raw),
        )
    if kind == "action":
        return ActionState(
            name=name,
            action=text(raw["action"]),
            input=text(raw["input"]),
            output=text(raw.get("output"), "{stdout}{stderr}"),
            next=text(raw["next"]),
            on_error=maybe_text(raw.get("on_error")),
            error_output=maybe_text(raw.get("error_output")),
        )
    return FinalState(name=name)


def transitions(on: YamlValue) -> tuple[Transition, ...]:
    """The triggers of `on`: a mapping trigger -> state, or a list of {when, to} entries whose
    `when` is one trigger or several spellings of it, put longest first (see TextState)."""
    if isinstance(on, dict):
        return tuple(Transition(t, text(s), ("on", t)) for t, s in on.items())
    found: list[Transition] = []
    for i, item in enumerate(items(on)):
        entry = mapping(item)
        when, target = entry.get("when"), text(entry.get("to"))
        if isinstance(when, str):
            found.append(Transition(when, target, ("on", i, "when")))
            continue
        spellings = [Transition(w, target, ("on", i, "when", j)) for j, w in enumerate(texts(when))]
        found += sorted(spellings, key=lambda t: -len(t.trigger))
    return tuple(found)


def _backend(doc: Doc, raw: YamlMap) -> BackendChoice:
    """The state's `backend`, else the spec's, else auto."""
    return choice(raw.get("backend", doc.top.get("backend")), get_args(BackendChoice), "auto")


def _json_whitespace(doc: Doc, raw: YamlMap) -> str:
    """The state's `json_whitespace`, else the spec's, else compact."""
    return str(raw.get("json_whitespace", doc.top.get("json_whitespace", "compact")))


def _state_sampling(raw: YamlMap) -> Sampling | None:
    return from_data(Sampling, mapping(raw["sampling"])) if "sampling" in raw else None


def build_machine(doc: Doc, states: dict[str, State], policy: Policy, policy_text: str) -> Machine:
    data = doc.top
    model = data.get("model", {})
    model_ref = (
        ModelRef(name=model) if isinstance(model, str) else from_data(ModelRef, mapping(model))
    )
    tests = tuple(
        GrammarTest(state, texts(mapping(t).get("accept")), texts(mapping(t).get("reject")))
        for state, t in mapping(data.get("tests")).items()
    )
    return Machine(
        name=text(data.get("name"), Path(doc.file).parent.name or Path(doc.file).stem),
        path=doc.file,
        start=text(data["start"]),
        states=states,
        policy=policy,
        model=model_ref,
        prompt=from_data(Prompt, mapping(data.get("prompt"))),
        sampling=from_data(Sampling, mapping(data.get("sampling"))),
        budgets=from_data(Budgets, mapping(data.get("limits"))),
        engine=choice(data.get("engine"), get_args(EngineChoice), "auto"),
        samples=from_data(Samples, mapping(data.get("samples"))),
        session=from_data(SessionLimits, mapping(data.get("session"))),
        tests=tests,
        description=text(data.get("description")),
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
