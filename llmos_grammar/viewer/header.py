"""A run's trace header: which spec, model, engine and backends made it, and its state graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos_grammar.ir import Machine
from llmos_grammar.viewer.graph_data import state_graph

if TYPE_CHECKING:
    from llmos_grammar.runtime import Runtime


def run_header(machine: Machine, task: str, runtime: Runtime | None = None) -> dict[str, object]:
    """What a trace's header says of a run of `machine` on `task` (with `runtime`: its model,
    engine, vocabulary and each constrained state's backend)."""
    header: dict[str, object] = {
        "spec": machine.path,
        "spec_key": machine.cache_key,
        "task": task,
        "model": machine.model.name,
        "graph": state_graph(machine).to_json(),
    }
    if runtime is not None:
        header["model"] = runtime.lm.name
        header["engine"] = runtime.engine_name
        header["vocab_size"] = runtime.table.vocab_size
        header["backends"] = {name: e.backend for name, e in runtime.enforcement.items()}
    return header
