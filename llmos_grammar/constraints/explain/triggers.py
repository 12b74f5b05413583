"""Where a text state's triggers fire in a text, by the runtime's own trigger matching."""

from __future__ import annotations

from dataclasses import dataclass

from llmos_grammar.ir import TextState
from llmos_grammar.runtime import triggers as runtime_triggers


@dataclass(frozen=True)
class TriggerHit:
    """A trigger written in the text (or begun at its end)."""

    trigger: str
    target: str
    start: int  # byte offset
    end: int  # byte offset after the trigger's bytes in the text
    fires: bool  # the one that ends the state (the first the runtime finds)
    rank: int  # its place in the state's triggers (the first of two at one place fires)
    forced: str = ""  # the rest of a trigger begun at the end of the text, forced by the runtime


def trigger_hits(state: TextState, data: bytes) -> tuple[TriggerHit, ...]:
    """Every trigger of `state` written in `data`, in order; the first the runtime's `find`
    reports (as the text grows) fires. A constrained state fires only on a whole trigger;
    a free one also on a begun trigger at the end of the text (the runtime forces the rest)."""
    names = [t.trigger for t in state.triggers]
    targets = {
        t.trigger.encode(): (t.target, i) for i, t in reversed(list(enumerate(state.triggers)))
    }
    found: list[TriggerHit] = []
    fired = False
    for end in _ends(data, names):
        hit = runtime_triggers.find(data[:end], names, 1)
        if hit is None or not hit.complete:
            continue
        found.append(_hit(hit, targets, fires=not fired))
        fired = True
    if not fired and state.constraint is None:
        hit = runtime_triggers.find(data, names, 1)
        if hit is not None and not hit.complete:
            found.append(_hit(hit, targets, fires=True))
    return tuple(found)


def _hit(
    hit: runtime_triggers.Hit, targets: dict[bytes, tuple[str, int]], fires: bool
) -> TriggerHit:
    rest = hit.trigger[hit.matched :].decode("utf-8", "replace")
    target, rank = targets[hit.trigger]
    end = hit.start + hit.matched
    return TriggerHit(hit.trigger.decode(), target, hit.start, end, fires, rank, rest)


def _ends(data: bytes, names: list[str]) -> list[int]:
    """Every offset just after a trigger's bytes in `data`, in order."""
    ends: set[int] = set()
    for name in names:
        mark = name.encode()
        at = data.find(mark) if mark else -1
        while at >= 0:
            ends.add(at + len(mark))
            at = data.find(mark, at + 1)
    return sorted(ends)
