"""Run a text through one state's constraint as the decoder would, without a model."""

from __future__ import annotations

from llmos_grammar.constraints.backend import BackendName, Matcher
from llmos_grammar.constraints.choose import plan
from llmos_grammar.constraints.explain import notes
from llmos_grammar.constraints.explain.charset import describe
from llmos_grammar.constraints.explain.jsontext import SchemaError, json_path, schema_errors
from llmos_grammar.constraints.explain.lexemes import Lexeme, lexemes
from llmos_grammar.constraints.explain.marks import Use
from llmos_grammar.constraints.explain.report import Expected, Explanation, Verdict
from llmos_grammar.constraints.explain.triggers import TriggerHit, trigger_hits
from llmos_grammar.constraints.explain.walk import (
    Walk,
    accepts_next,
    allowed_bytes,
    forced_text,
    walk,
)
from llmos_grammar.constraints.registry import byte_compiled
from llmos_grammar.ir import GrammarSource, GrammarState, Machine, State, TextState

NAMED_BYTES = 1 << 15  # the longest prefix lexemes are named after (a second walk of it)


def explainable(machine: Machine) -> list[str]:
    """The states a text can be explained in: text and grammar states."""
    return [n for n, s in machine.states.items() if isinstance(s, TextState | GrammarState)]


def explain(
    machine: Machine, name: str, text: str, backend: BackendName | None = None
) -> Explanation:
    """`text` through state `name`'s constraint, byte by byte, enforced by `backend` (by
    default the one `plan` picks, as for decoding). KeyError for a state that is not a
    text or grammar state."""
    state = _state(machine, name)
    data = text.encode("utf-8")
    hits = trigger_hits(state, data) if isinstance(state, TextState) else ()
    fire = next((h for h in hits if h.fires), None)
    if state.constraint is None:
        return _free(machine, state, data, hits, fire)
    source = state.constraint
    close = state.close if isinstance(state, GrammarState) else None
    backend = backend or plan(source, close, state.backend).backend
    compiled = byte_compiled(source, close, backend)
    limit = fire.end if fire is not None else len(data)
    walked = walk(compiled, data[:limit], close)
    at = walked.taken
    ends_at, ended_by = _end(walked, fire)
    expected = None if ends_at is not None else expect(walked.matcher, source, close, data[:at])
    verdict = _verdict(walked, expected, close)
    then = state.next if isinstance(state, GrammarState) else fire.target if fire else ""
    explanation = Explanation(
        spec=machine.path,
        state=name,
        kind=source.kind,
        backend=backend,
        close=close or "",
        open=state.open if isinstance(state, GrammarState) else "",
        text=data,
        verdict=verdict,
        taken=at,
        refused=at if walked.refused else None,
        expected=expected,
        ends_at=ends_at,
        ended_by=ended_by,
        then=then if ends_at is not None else "",
        triggers=hits,
    )
    return notes.annotate(explanation, source, _schema_errors(source, data, ends_at, close))


def expect(matcher: Matcher, source: GrammarSource, close: str | None, prefix: bytes) -> Expected:
    """What the constraint allows after `prefix`, where `matcher` stands (it is not moved)."""
    allowed = allowed_bytes(matcher)
    starting, progress, unnamed = _names(matcher, source, close, prefix, allowed)
    path = json_path(prefix.decode("utf-8", "replace")) if source.kind == "json_schema" else None
    return Expected(
        chars=describe(allowed),
        starting=starting,
        in_progress=progress,
        forced=forced_text(matcher).decode("utf-8", "replace"),
        close=accepts_next(matcher, close.encode()) if close else None,
        json_path=path,
        end=matcher.is_accepting(),
        unnamed=unnamed,
    )


def _names(
    matcher: Matcher,
    source: GrammarSource,
    close: str | None,
    prefix: bytes,
    allowed: frozenset[int],
) -> tuple[tuple[Use, ...], Lexeme | None, str]:
    """(lexemes that may start, the one in progress, why none are named) of a Lark source."""
    if source.kind != "lark" or matcher.backend != "llguidance":
        return (), None, ""
    if len(prefix) > NAMED_BYTES:
        return (), None, f"lexemes are named within the first {NAMED_BYTES} bytes only"
    marked = lexemes(source, close)
    named = marked.after(prefix) if marked is not None else None
    # names only where the marked grammar allows the same bytes (it reads the text alike)
    if marked is None or named is None or marked.allowed(named) != allowed:
        return (), None, "the grammar's lexemes cannot be named here (see docs/explain.md)"
    return marked.starting(named), marked.in_progress(named, prefix, allowed), ""


def _verdict(walked: Walk, expected: Expected | None, close: str | None) -> Verdict:
    """Rejected at a refused byte; accepted when the state ended inside the text or its
    text is complete (for a grammar state: its close may follow); else a prefix."""
    if walked.refused:
        return "rejected"
    if expected is None:
        return "accepted"
    complete = expected.close if close else expected.end
    return "accepted" if complete else "prefix"


def _end(walked: Walk, fire: TriggerHit | None) -> tuple[int | None, str]:
    if walked.ended:
        return walked.taken, "close"
    if fire is not None and not walked.refused and fire.forced == "":
        return fire.end, fire.trigger
    return None, ""


def _free(
    machine: Machine,
    state: TextState,
    data: bytes,
    hits: tuple[TriggerHit, ...],
    fire: TriggerHit | None,
) -> Explanation:
    """A text state without a constraint: all text is allowed; only triggers matter."""
    ends = fire is not None and not fire.forced
    explanation = Explanation(
        spec=machine.path,
        state=state.name,
        kind="text",
        backend="",
        close="",
        open="",
        text=data,
        verdict="accepted",
        taken=fire.end if fire is not None and ends else len(data),
        refused=None,
        expected=None,
        ends_at=fire.end if fire is not None and ends else None,
        ended_by=fire.trigger if fire is not None and ends else "",
        then=fire.target if fire is not None and ends else "",
        triggers=hits,
    )
    return notes.annotate(explanation, None, ())


def _schema_errors(
    source: GrammarSource, data: bytes, ends_at: int | None, close: str | None
) -> tuple[SchemaError, ...]:
    if source.kind != "json_schema":
        return ()
    body = data[:ends_at] if ends_at is not None else data
    if close and body.endswith(close.encode()):
        body = body[: -len(close.encode())]
    return schema_errors(source.text, body.decode("utf-8", "replace"))


def _state(machine: Machine, name: str) -> TextState | GrammarState:
    state: State | None = machine.states.get(name)
    if not isinstance(state, TextState | GrammarState):
        raise KeyError(name)
    return state
