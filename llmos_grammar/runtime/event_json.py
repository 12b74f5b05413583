"""Events to JSON and back: `event_to_json` writes a trace line, `event_from_json` reads it into
the same typed classes (unknown keys ignored; a missing or mistyped field is a TraceError)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar, cast, get_args

from llmos_grammar.errors import TraceError
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.events import (
    ActionFinished,
    ActionRecord,
    ActionStarted,
    Alternative,
    DoneEvent,
    Event,
    HealedEvent,
    InjectedEvent,
    Result,
    Source,
    Span,
    Stats,
    StepDetail,
    StopReason,
    TokenEvent,
    TransitionEvent,
)

T = TypeVar("T")
JSON = Mapping[str, object]


def event_to_json(event: Event) -> dict[str, Any]:
    """A JSON-ready dict for any event."""
    if isinstance(event, DoneEvent):
        return {"kind": "done", "result": event.result.to_json()}
    if isinstance(event, ActionFinished):
        return {**asdict(event), "result": event.result.to_json()}
    data = asdict(event)
    for key in ("token_ids", "dropped", "ids"):
        if key in data:
            data[key] = list(data[key])
    if isinstance(event, TokenEvent):
        if event.detail is None:
            del data["detail"]  # a run without details writes what 0.2 wrote
        else:
            data["detail"] = _detail_json(event.detail)
    return data


def _detail_json(detail: StepDetail) -> dict[str, object]:
    top = [[a.token_id, a.text, round(a.p, 6)] for a in detail.top]
    step = round(detail.step_s, 6)
    return {"p": round(detail.p, 6), "allowed": detail.allowed, "top": top, "step_s": step}


def event_from_json(data: JSON) -> Event:
    """The event `event_to_json` wrote (a trace line, a `--json` line)."""
    kind = data.get("kind")
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        known = ", ".join(_READERS)
        raise TraceError(f"not an event: kind {kind!r} (events are: {known})")
    return reader(data)


def _token(d: JSON) -> TokenEvent:
    ids = tuple(_int(i, "token_ids") for i in _list(d, "token_ids"))
    raw = d.get("detail")
    detail = None if raw is None else _detail(_as_dict(raw, "detail"))
    return TokenEvent(_str(d, "state"), _str(d, "text"), ids, _bool(d, "forced"), detail=detail)


def _detail(d: JSON) -> StepDetail:
    allowed = d.get("allowed")
    top = tuple(_alternative(a) for a in _list(d, "top", []))
    return StepDetail(
        _number(d.get("p"), "detail.p"),
        None if allowed is None else _int(allowed, "detail.allowed"),
        top,
        _number(d.get("step_s", 0.0), "detail.step_s"),
    )


def _alternative(value: object) -> Alternative:
    """[id, text, p], as `_detail_json` writes it."""
    if not isinstance(value, list) or len(value) != 3 or not isinstance(value[1], str):
        raise TraceError("`detail.top` must hold [id, text, p] triples")
    return Alternative(_int(value[0], "detail.top"), value[1], _number(value[2], "detail.top"))


def _healed(d: JSON) -> HealedEvent:
    dropped = tuple(_int(i, "dropped") for i in _list(d, "dropped"))
    ids = tuple(_int(i, "ids") for i in _list(d, "ids"))
    return HealedEvent(_str(d, "state"), _str(d, "text"), dropped, ids)


def _transition(d: JSON) -> TransitionEvent:
    return TransitionEvent(_str(d, "source"), _str(d, "target"), _str(d, "trigger"))


def _started(d: JSON) -> ActionStarted:
    return ActionStarted(_str(d, "state"), _str(d, "action"), _str(d, "input"))


def _finished(d: JSON) -> ActionFinished:
    return ActionFinished(_str(d, "state"), _str(d, "action"), action_result(_dict(d, "result")))


def _injected(d: JSON) -> InjectedEvent:
    return InjectedEvent(_str(d, "state"), _str(d, "text"), _int(d.get("n_tokens"), "n_tokens"))


def _done(d: JSON) -> DoneEvent:
    return DoneEvent(result_from_json(_dict(d, "result")))


_READERS: dict[str, Callable[[JSON], Event]] = {
    "token": _token,
    "transition": _transition,
    "action_started": _started,
    "action_finished": _finished,
    "injected": _injected,
    "done": _done,
    "healed": _healed,
}


def action_result(d: JSON) -> ActionResult:
    """An ActionResult from its `to_json` (the derived `status` and `ok` are left out)."""
    known = {f.name for f in fields(ActionResult)}
    values: dict[str, Any] = {k: v for k, v in d.items() if k in known}  # the class checks names
    unenforced = values.get("unenforced")
    if isinstance(unenforced, list):
        values["unenforced"] = tuple(str(v) for v in unenforced)
    try:
        return ActionResult(**values)
    except TypeError as exc:
        raise TraceError(f"not an action result: {exc}") from exc


def result_from_json(d: JSON) -> Result:
    """A Result from its `to_json`."""
    return Result(
        text=_str(d, "text"),
        final_state=_str(d, "final_state"),
        stop_reason=cast(StopReason, _choice(d, "stop_reason", get_args(StopReason))),
        message=_str(d, "message"),
        transcript=tuple(_span(_as_dict(s, "transcript")) for s in _list(d, "transcript")),
        actions=tuple(_record(_as_dict(a, "actions")) for a in _list(d, "actions")),
        stats=_stats(_dict(d, "stats")),
        prompt_ids=_ids(d, "prompt_ids"),
        completion_ids=_ids(d, "completion_ids"),
        chosen=_ids(d, "chosen"),
    )


def _span(d: JSON) -> Span:
    source = cast(Source, _choice(d, "source", get_args(Source)))
    return Span(_str(d, "state"), source, _str(d, "text"))


def _record(d: JSON) -> ActionRecord:
    result = action_result(_dict(d, "result"))
    state, action = _str(d, "state"), _str(d, "action")
    return ActionRecord(state, action, _str(d, "input"), result, _str(d, "output"))


def _stats(d: JSON) -> Stats:
    stats = Stats()
    for f in fields(Stats):
        value = d.get(f.name, getattr(stats, f.name))
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TraceError(f"stats.{f.name} is not a number")
        setattr(stats, f.name, type(getattr(stats, f.name))(value))
    return stats


def _ids(d: JSON, key: str) -> tuple[int, ...]:
    return tuple(_int(i, key) for i in _list(d, key, []))


def _get(d: JSON, key: str, kind: type[T], default: T | None = None) -> T:
    value = d.get(key, default)
    if not isinstance(value, kind):
        raise TraceError(f"`{key}` must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _str(d: JSON, key: str) -> str:
    return _get(d, key, str)


def _choice(d: JSON, key: str, options: tuple[str, ...]) -> str:
    value = _str(d, key)
    if value not in options:
        raise TraceError(f"`{key}` is {value!r}; expected one of: {', '.join(options)}")
    return value


def _bool(d: JSON, key: str) -> bool:
    return _get(d, key, bool, False)


def _list(d: JSON, key: str, default: list[object] | None = None) -> list[object]:
    return _get(d, key, list, default)


def _dict(d: JSON, key: str) -> JSON:
    return _as_dict(d.get(key), key)


def _as_dict(value: object, key: str) -> JSON:
    if not isinstance(value, dict):
        raise TraceError(f"`{key}` must hold objects, not {type(value).__name__}")
    return value


def _number(value: object, key: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TraceError(f"`{key}` must be a number, not {type(value).__name__}")
    return float(value)


def _int(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TraceError(f"`{key}` must hold integers, not {type(value).__name__}")
    return value
