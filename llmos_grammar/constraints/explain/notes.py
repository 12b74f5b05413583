"""Notes on an explanation: the reasons behind a verdict that the walk alone does not say."""

from __future__ import annotations

from dataclasses import replace

from llmos_grammar.constraints.explain.jsontext import SchemaError
from llmos_grammar.constraints.explain.report import Explanation
from llmos_grammar.grammar.noclose import HOOK, hook_users
from llmos_grammar.ir import GrammarSource

JSON_SPACE = b" \t\r\n"


def annotate(
    explanation: Explanation, source: GrammarSource | None, errors: tuple[SchemaError, ...]
) -> Explanation:
    """`explanation` with its notes and the schema validator's errors."""
    found = [
        *_open(explanation),
        *_close_inside(explanation, source),
        *_json_space(explanation, source),
        *_rest(explanation),
        *_triggers(explanation),
    ]
    if errors and explanation.verdict != "rejected":
        found.append("the constraint accepts this JSON, yet the schema's validator does not")
    return replace(explanation, notes=tuple(found), schema_errors=errors)


def _open(e: Explanation) -> list[str]:
    opening = e.open.encode()
    if not opening or e.refused is None or e.refused >= len(opening):
        return []
    if not e.text.startswith(opening):
        return []
    return [
        f"the text starts with the state's `open` text {e.open!r}, which the runtime forces on "
        "entering the state, before the constraint: leave it out of TEXT"
    ]


def _close_inside(e: Explanation, source: GrammarSource | None) -> list[str]:
    """A close written where the grammar's text is not complete (inside a string, say)."""
    if not e.close or e.refused is None:
        return []
    mark = e.close.encode()
    start = e.text.rfind(mark, 0, e.refused + 1)
    first = e.text.find(mark, max(0, e.refused - len(mark) + 1))
    inside = [s for s in (start, first) if 0 <= s <= e.refused < s + len(mark)]
    if not inside:
        return []
    out = [
        f"the close {e.close!r} is written at byte {inside[0]}, where the grammar's text is not "
        "complete: the state ends only at a close that follows a complete text"
    ]
    progress = e.expected.in_progress if e.expected else None
    users = set(hook_users(source)) if source is not None and source.excludes else set()
    held = [t for t in progress.terminals if t in users] if progress else []
    if held:
        out.append(
            f"it is inside {', '.join(held)}, which may not contain the close: the grammar "
            f"excludes it through {HOOK} (see `llmos-check` info lines)"
        )
    return out


def _json_space(e: Explanation, source: GrammarSource | None) -> list[str]:
    if source is None or source.kind != "json_schema" or e.refused is None:
        return []
    if e.text[e.refused : e.refused + 1] not in [bytes([b]) for b in JSON_SPACE]:
        return []
    if source.json_whitespace != "compact":
        return [f"whitespace here is not allowed by json_whitespace {source.json_whitespace!r}"]
    return ["the state's json_whitespace is compact: no whitespace between JSON tokens"]


def _rest(e: Explanation) -> list[str]:
    if e.ends_at is None or e.ends_at >= len(e.text):
        return []
    rest = len(e.text) - e.ends_at
    by = "its close" if e.ended_by == "close" else f"the trigger {e.ended_by!r}"
    return [
        f"the state ends after byte {e.ends_at - 1} ({by}): the decoder moves to state "
        f"{e.then!r} there, and the {rest} byte(s) after it are not this state's"
    ]


def _triggers(e: Explanation) -> list[str]:
    out: list[str] = []
    fired = next((h for h in e.triggers if h.fires), None)
    if fired is None:
        return out
    for other in e.triggers:
        if other.start == fired.start and other.rank < fired.rank:
            out.append(
                f"if one token completes both {fired.trigger!r} and {other.trigger!r}, "
                f"{other.trigger!r} fires (it comes first in the state's triggers)"
            )
    if fired.forced:
        out.append(
            f"the text ends with the start of the trigger {fired.trigger!r}: the runtime "
            f"forces the rest ({fired.forced!r}) and moves to state {fired.target!r}"
        )
    return out
