"""Engines: the narrow interface between the decode state machine and a model, and the registry.

`base` is the interface (rows, logits or segments, capabilities, close);
`registry` lists the engines by name ("module:function" entries, nothing
imported until one is used); `select` picks one for a model. Each engine is
one module: `transformers` (every row packed into one KV cache), `llamacpp`
(rows are llama.cpp sequences of one context), `vllm` (each segment a request
to a vLLM server).
"""

from __future__ import annotations

from llmos_grammar.engines.base import (
    Capabilities,
    CopiesRows,
    Engine,
    EngineCounters,
    LogitsEngine,
    MeasuresCache,
    Output,
    SegmentEnd,
    SegmentEngine,
    SegmentOutput,
    SegmentParams,
    gives_logits,
    gives_segments,
)
from llmos_grammar.engines.registry import (
    ENGINES,
    EngineEntry,
    engine_entry,
    register_engine,
    start_engine,
)

__all__ = [
    "ENGINES",
    "Capabilities",
    "CopiesRows",
    "Engine",
    "EngineCounters",
    "EngineEntry",
    "LogitsEngine",
    "MeasuresCache",
    "Output",
    "SegmentEnd",
    "SegmentEngine",
    "SegmentOutput",
    "SegmentParams",
    "engine_entry",
    "gives_logits",
    "gives_segments",
    "register_engine",
    "start_engine",
]
