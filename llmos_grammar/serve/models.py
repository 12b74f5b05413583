"""The served models: spec files loaded, one engine per model shared by its specs, the plain model.

Every spec is compiled once and served under its `name`; the specs that run the
same model on the same engine share one loaded model and one engine (rows of
one batch), and that model is also served plain, under its own name: a chat
with no spec (`constrain.plain_machine`), which still takes `response_format`
and `tools`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmos_grammar.constraints import Compiled, TokenTable
from llmos_grammar.engines import Engine, start_engine
from llmos_grammar.errors import SpecError
from llmos_grammar.ir import DEFAULT_MODEL, Budgets, Machine, ModelRef
from llmos_grammar.models import LoadedModel
from llmos_grammar.runtime.engine import compile_states
from llmos_grammar.serve.constrain import plain_machine
from llmos_grammar.serve.types import ServedModel

PLAIN_MAX_TOKENS = 1024  # the plain model's cap on max_tokens


@dataclass
class EngineGroup:
    """One loaded model and its one engine: every served model on it decodes there."""

    name: str  # the model's name (its plain model's id)
    lm: LoadedModel
    engine: Engine
    table: TokenTable
    owns_model: bool = True

    def close(self) -> None:
        self.engine.close()
        if self.owns_model:
            self.lm.close()


@dataclass(frozen=True)
class Served:
    """A model clients name: a spec's machine (or the plain one), compiled, on its group."""

    info: ServedModel
    machine: Machine
    constraints: Mapping[str, Compiled]
    group: EngineGroup


class ServedSet:
    """Everything served, by id, and the engine groups under it; `close()` ends them."""

    def __init__(self, served: Sequence[Served]) -> None:
        self.by_id: dict[str, Served] = {}
        for s in served:
            if s.info.id in self.by_id:
                raise SpecError(
                    f"two served models are named {s.info.id!r} ({s.info.spec or 'a model'} "
                    f"and {self.by_id[s.info.id].info.spec or 'a model'}): rename a spec"
                )
            self.by_id[s.info.id] = s
        self.groups: list[EngineGroup] = []
        for s in served:
            if all(g is not s.group for g in self.groups):
                self.groups.append(s.group)

    def models(self) -> tuple[ServedModel, ...]:
        return tuple(s.info for s in self.by_id.values())

    def close(self) -> None:
        for group in self.groups:
            group.close()


def served_on(
    lm: LoadedModel,
    machines: Sequence[Machine],
    *,
    plain: str | None = None,
    plain_max_tokens: int = PLAIN_MAX_TOKENS,
    owns_model: bool = False,
) -> ServedSet:
    """Serve `machines` (and the plain model as `plain`, when given) on a loaded model."""
    group = EngineGroup(lm.name, lm, start_engine(lm, ()), lm.token_table(), owns_model)
    try:
        served = [_spec(m, group) for m in machines]
        if plain is not None:
            served.append(_plain(plain, group, plain_max_tokens))
        return ServedSet(served)
    except BaseException:
        group.close()
        raise


def load_served(
    specs: Sequence[str | Path],
    *,
    engine: str | None = None,
    engine_args: Mapping[str, str] | None = None,
    plain_max_tokens: int = PLAIN_MAX_TOKENS,
) -> ServedSet:
    """Load the spec files, each model once on its engine (`engine`, else the spec's), and
    serve each model plain under its own name too. No specs: the default model, plain."""
    from llmos_grammar.engines.select import choose, load_for
    from llmos_grammar.spec.loader import load

    machines = [load(path) for path in specs]
    refs = [m.model for m in machines] or [ModelRef(DEFAULT_MODEL)]
    asked = [m.engine for m in machines] or ["auto"]
    names = [
        choose(engine or e, r, engine_args=engine_args) for r, e in zip(refs, asked, strict=True)
    ]
    keys = list(dict.fromkeys(zip(refs, names, strict=True)))  # (model, engine), in order
    groups: list[EngineGroup] = []
    try:
        for ref, name in keys:
            lm = load_for(name, ref, engine_args)
            groups.append(EngineGroup(ref.name, lm, start_engine(lm, ()), lm.token_table()))
        served: list[Served] = []
        for machine, name in zip(machines, names[: len(machines)], strict=True):
            served.append(_spec(machine, groups[keys.index((machine.model, name))]))
        for group in groups:
            if not any(s.info.id == group.name for s in served):
                served.append(_plain(group.name, group, plain_max_tokens))
        return ServedSet(served)
    except BaseException:
        for group in groups:
            group.close()
        raise


def _spec(machine: Machine, group: EngineGroup) -> Served:
    constraints, _ = compile_states(machine, group.table)
    info = ServedModel(machine.name, machine.path, group.lm.name, machine.budgets.max_tokens)
    return Served(info, machine, constraints, group)


def _plain(name: str, group: EngineGroup, max_tokens: int) -> Served:
    ref = ModelRef(group.lm.name)
    machine = plain_machine(ref, name, Budgets(max_tokens=max_tokens))
    info = ServedModel(name, None, group.lm.name, max_tokens)
    return Served(info, machine, {}, group)
