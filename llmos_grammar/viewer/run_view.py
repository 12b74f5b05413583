"""What the page shows of one run, built from its typed events: spans, state bands, action
cards, the header's figures. JSON-ready; every untrusted string made visible first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llmos_grammar.errors import TraceError
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.events import (
    ActionFinished,
    ActionStarted,
    DoneEvent,
    Event,
    HealedEvent,
    InjectedEvent,
    Result,
    StepDetail,
    TokenEvent,
    TransitionEvent,
)
from llmos_grammar.trace import Trace
from llmos_grammar.viewer.graph_data import StateGraph, graph_from_json
from llmos_grammar.visible import visible

# A span's origin, one letter each: sampled, forced, injected, healed (token healing).
SAMPLED, FORCED, INJECTED, HEALED = "s", "f", "i", "h"
ORIGINS = {SAMPLED: "sampled", FORCED: "forced", INJECTED: "injected", HEALED: "healed"}
JSON = dict[str, object]


@dataclass
class Band:
    """A stretch of the run in one state: entered from `source` by `trigger`."""

    state: str
    type: str
    trigger: str
    source: str
    first: int  # the index of its first span
    card: int = -1  # its action card, if any

    def to_json(self) -> list[object]:
        return [self.state, self.type, self.trigger, self.source, self.first, self.card]


@dataclass
class RunView:
    """The page data of one run (see `to_json`)."""

    meta: JSON
    texts: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    extras: list[object] = field(default_factory=list)  # per span: what hovering shows
    bands: list[Band] = field(default_factory=list)
    cards: list[JSON] = field(default_factory=list)
    healed_tail: list[int] = field(default_factory=list)  # spans whose text healing re-tokenized

    def counts(self) -> dict[str, int]:
        """Spans of each origin, by name."""
        return {name: self.origins.count(code) for code, name in ORIGINS.items()}

    def to_json(self) -> JSON:
        return {
            "meta": {**self.meta, "counts": self.counts()},
            "texts": self.texts,
            "origins": "".join(self.origins),
            "extras": self.extras,
            "bands": [b.to_json() for b in self.bands],
            "cards": self.cards,
            "healed": self.healed_tail,
        }


def run_view(trace: Trace, graph: StateGraph | None = None) -> RunView:
    """The page data of `trace`; `graph` names the states' types (else the header's)."""
    if graph is None and "graph" in trace.header:
        try:
            graph = graph_from_json(trace.header["graph"])
        except TraceError:
            graph = None  # the bands show no types; the page says why (run_page)
    types = graph.types() if graph is not None else {}
    builder = _Builder(RunView(_meta(trace)), types)
    for event in trace.events:
        builder.add(event)
    return builder.view


class _Builder:
    def __init__(self, view: RunView, types: dict[str, str]) -> None:
        self.view = view
        self.types = types
        self.started: ActionStarted | None = None
        self.handlers: dict[str, Callable[[Event], None]] = {
            "token": self._token,
            "injected": self._injected,
            "healed": self._healed,
            "transition": self._transition,
            "action_started": self._action_started,
            "action_finished": self._action_finished,
            "done": self._done,
        }

    def add(self, event: Event) -> None:
        self.handlers[event.kind](event)

    def _band(self, state: str) -> Band:
        """The band an event of `state` belongs to: the current one (a transition opens the
        next), or the start state's first."""
        bands = self.view.bands
        if not bands or bands[-1].state != state:
            trigger = "start" if not bands else ""
            self._open(state, trigger, "")
        return bands[-1]

    def _open(self, state: str, trigger: str, source: str) -> None:
        kind = self.types.get(state, "?")
        self.view.bands.append(Band(state, kind, trigger, source, len(self.view.texts)))

    def _span(self, state: str, origin: str, text: str, extra: object) -> None:
        self._band(state)
        self.view.texts.append(visible(text))
        self.view.origins.append(origin)
        self.view.extras.append(extra)

    def _token(self, event: Event) -> None:
        assert isinstance(event, TokenEvent)
        if event.forced:
            self._span(event.state, FORCED, event.text, list(event.token_ids))
        else:
            extra = [list(event.token_ids), _detail(event.detail)]
            self._span(event.state, SAMPLED, event.text, extra)

    def _injected(self, event: Event) -> None:
        assert isinstance(event, InjectedEvent)
        self._span(event.state, INJECTED, event.text, event.n_tokens)

    def _healed(self, event: Event) -> None:
        assert isinstance(event, HealedEvent)
        tail = self._tail(visible(event.text))
        self.view.healed_tail.extend(tail)
        extra = [visible(event.text), list(event.dropped), list(event.ids), bool(tail)]
        self._span(event.state, HEALED, "", extra)

    def _tail(self, text: str) -> list[int]:
        """The spans at the end of the text so far that hold `text`; none if it is not there
        (the healed token was the prompt's)."""
        need, out = len(text), []
        shown = self.view.texts
        i = len(shown) - 1
        joined = ""
        while i >= 0 and len(joined) < need:
            if self.view.origins[i] != HEALED:
                joined = shown[i] + joined
                out.append(i)
            i -= 1
        return out if need and joined.endswith(text) else []

    def _transition(self, event: Event) -> None:
        assert isinstance(event, TransitionEvent)
        self._open(event.target, visible(event.trigger), event.source)

    def _action_started(self, event: Event) -> None:
        assert isinstance(event, ActionStarted)
        self.started = event
        band = self._band(event.state)
        band.type = self.types.get(event.state, "action")
        band.card = len(self.view.cards)
        self.view.cards.append(_card(event.action, event.input, None))

    def _action_finished(self, event: Event) -> None:
        assert isinstance(event, ActionFinished)
        started = self.started
        text = started.input if started is not None else ""
        card = _card(event.action, text, event.result)
        band = self.view.bands[-1] if self.view.bands else None
        if band is not None and band.card >= 0 and started is not None:
            self.view.cards[band.card] = card
        else:
            self._band(event.state).card = len(self.view.cards)
            self.view.cards.append(card)
        self.started = None

    def _done(self, event: Event) -> None:
        assert isinstance(event, DoneEvent)
        self.view.meta.update(_result_meta(event.result))


def _detail(detail: StepDetail | None) -> list[object] | None:
    """[p, allowed, step seconds, [[id, text, p], ...]] or None (not recorded)."""
    if detail is None:
        return None
    top = [[a.token_id, visible(a.text), a.p] for a in detail.top]
    return [detail.p, detail.allowed, detail.step_s, top]


def _card(action: str, text: str, result: ActionResult | None) -> JSON:
    """What an action card shows: the input, and the result when the action finished."""
    card: JSON = {"action": visible(action), "input": visible(text)}
    if result is None:
        return {**card, "status": "did not finish"}
    limits = dict(result.limits)
    layers = limits.pop("layers", [])
    return {
        **card,
        "status": visible(result.status),
        "ok": result.ok,
        "stdout": visible(result.stdout),
        "stderr": visible(result.stderr),
        "rows": visible(result.rows),
        "exit_code": result.exit_code,
        "signal": result.signal,
        "limit_hit": result.limit_hit or ("timeout" if result.timed_out else None),
        "truncated": result.truncated,
        "duration_s": result.duration_s,
        "cpu_s": result.cpu_s,
        "peak_memory_mb": result.peak_memory_mb,
        "refused": None if result.refused is None else visible(result.refused),
        "unenforced": [visible(u) for u in result.unenforced],
        "layers": [visible(str(x)) for x in layers] if isinstance(layers, list) else [],
        "limits": {visible(k): visible(str(v)) for k, v in limits.items()},
    }


def _meta(trace: Trace) -> JSON:
    """The header's facts (untrusted text made visible)."""
    header = trace.header
    meta: JSON = {}
    for key in ("spec", "spec_key", "task", "model", "engine"):
        value = header.get(key)
        if isinstance(value, str | int | float):
            meta[key] = visible(str(value))
    backends = header.get("backends")
    if isinstance(backends, dict):
        meta["backends"] = {visible(str(k)): visible(str(v)) for k, v in backends.items()}
    vocab = header.get("vocab_size")
    if isinstance(vocab, int):
        meta["vocab_size"] = vocab
    meta["version"] = header.get("llmos_trace")
    meta["details"] = any(isinstance(e, TokenEvent) and e.detail for e in trace.events)
    meta["wall_s"] = trace.times[-1] if trace.times else 0.0
    return meta


def _result_meta(result: Result) -> JSON:
    s = result.stats
    prompt = "".join(span.text for span in result.transcript if span.source == "prompt")
    return {
        "stop_reason": result.stop_reason,
        "message": visible(result.message),
        "final_state": visible(result.final_state),
        "prompt": visible(prompt),
        "stats": {
            "prompt_tokens": s.prompt_tokens,
            "sampled": s.generated_tokens,
            "forced": s.forced_tokens,
            "forward_passes": s.forward_passes,
            "actions": s.actions,
            "first_token_s": round(s.time_to_first_token_s, 4),
            "decode_s": round(s.decode_s, 4),
            "action_s": round(s.action_s, 4),
            "total_s": round(s.total_s, 4),
            "tokens_per_s": round(s.tokens_per_s, 2),
        },
    }
