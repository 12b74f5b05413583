"""The decoding runtime: a state machine inside the decode loop, KV-cache resume, events."""

from __future__ import annotations

from llmos_grammar.runtime.engine import Runtime
from llmos_grammar.runtime.event_json import event_from_json, event_to_json
from llmos_grammar.runtime.events import (
    ActionFinished,
    ActionRecord,
    ActionStarted,
    DoneEvent,
    Event,
    InjectedEvent,
    Result,
    RowEvent,
    Span,
    Stats,
    TokenEvent,
    TransitionEvent,
)
from llmos_grammar.runtime.session import Session

__all__ = [
    "ActionFinished",
    "ActionRecord",
    "ActionStarted",
    "DoneEvent",
    "Event",
    "InjectedEvent",
    "Result",
    "RowEvent",
    "Runtime",
    "Span",
    "Session",
    "Stats",
    "TokenEvent",
    "TransitionEvent",
    "event_from_json",
    "event_to_json",
]
