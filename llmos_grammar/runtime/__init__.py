"""The decoding runtime: a state machine inside the decode loop, KV-cache resume, events."""

from __future__ import annotations

from llmos_grammar.runtime.batch import RowEvent
from llmos_grammar.runtime.engine import Runtime
from llmos_grammar.runtime.events import (
    ActionFinished,
    ActionRecord,
    ActionStarted,
    DoneEvent,
    Event,
    InjectedEvent,
    Result,
    Segment,
    Stats,
    TokenEvent,
    TransitionEvent,
    event_to_json,
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
    "Segment",
    "Session",
    "Stats",
    "TokenEvent",
    "TransitionEvent",
    "event_to_json",
]
