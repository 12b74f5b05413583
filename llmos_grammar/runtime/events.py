"""Typed events a run yields, and the Result it ends with (event_json.py reads them back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from llmos_grammar.results import ActionResult

StopReason = Literal[
    "final", "eos", "max_tokens", "state_max_tokens", "max_actions", "wall_s", "refused"
]


class Stop(Exception):
    """Ends a run cleanly with a reason (a budget, a refusal, the end of the turn)."""

    def __init__(self, reason: StopReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Alternative:
    """One candidate of a sampling step: a token id, its text and its probability."""

    token_id: int
    text: str
    p: float


@dataclass(frozen=True)
class StepDetail:
    """What the decoder saw when it sampled a token; recorded only when a run asks for it
    (`Runtime(details=True)`), so that a normal run pays nothing."""

    p: float  # the sampled token's probability under the mask, at the sampling temperature
    allowed: int | None  # how many ids the state's mask allowed; None: the state has no mask
    top: tuple[Alternative, ...]  # the likeliest ids at this step, best first
    step_s: float  # seconds from asking for the logits to the sampled token


@dataclass(frozen=True)
class TokenEvent:
    """Text the model produced (`forced` when the grammar or a trigger dictated it);
    `detail`: the sampling step of a sampled token, when the run records details."""

    state: str
    text: str
    token_ids: tuple[int, ...]
    forced: bool = False
    kind: Literal["token"] = "token"
    detail: StepDetail | None = None


@dataclass(frozen=True)
class TransitionEvent:
    """The machine moved from `source` to `target` (`trigger`: what caused it)."""

    source: str
    target: str
    trigger: str
    kind: Literal["transition"] = "transition"


@dataclass(frozen=True)
class ActionStarted:
    state: str
    action: str
    input: str
    kind: Literal["action_started"] = "action_started"


@dataclass(frozen=True)
class ActionFinished:
    state: str
    action: str
    result: ActionResult
    kind: Literal["action_finished"] = "action_finished"


@dataclass(frozen=True)
class InjectedEvent:
    """An action's rendered output, appended to the context without sampling.

    Other text the model did not sample (a trigger's rest, a close delimiter, a
    state's `open`, grammar-forced tokens) comes as a TokenEvent with `forced`.
    """

    state: str
    text: str
    n_tokens: int
    kind: Literal["injected"] = "injected"


@dataclass(frozen=True)
class HealedEvent:
    """Token healing: `text`, the end of the run's text so far, was in the context as
    `dropped` and was tokenized again together with the text after it, as `ids`.

    Yielded only by runs that record details (`Runtime(details=True)`).
    """

    state: str
    text: str
    dropped: tuple[int, ...]
    ids: tuple[int, ...]
    kind: Literal["healed"] = "healed"


@dataclass(frozen=True)
class ActionRecord:
    state: str
    action: str
    input: str
    result: ActionResult
    output: str  # the rendered text injected into the context


# where transcript text came from: the prompt, the model's sampling, forced (a trigger's
# rest, a delimiter, grammar-forced tokens), or injected (an action's rendered output)
Source = Literal["prompt", "model", "forced", "injected"]


@dataclass(frozen=True)
class Span:
    """One contiguous span of the transcript, its state and where it came from."""

    state: str
    source: Source
    text: str


@dataclass
class Stats:
    prompt_tokens: int = 0
    generated_tokens: int = 0  # sampled by the model
    forced_tokens: int = 0  # fed without sampling (forced + injected, after the prompt)
    forward_passes: int = 0
    actions: int = 0
    time_to_first_token_s: float = 0.0
    decode_s: float = 0.0
    action_s: float = 0.0
    total_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.decode_s if self.decode_s > 0 else 0.0


@dataclass(frozen=True)
class Result:
    """Everything a run did."""

    text: str  # the assistant turn: generated, forced and injected text in order
    final_state: str
    stop_reason: StopReason
    message: str
    transcript: tuple[Span, ...]
    actions: tuple[ActionRecord, ...]
    stats: Stats = field(default_factory=Stats)
    # For training: the ids as finally in the context. `chosen` has one entry per
    # completion id: 1 where the model sampled the token and it was kept, 0 where
    # it was fed without sampling (forced, injected, or re-tokenized by healing).
    prompt_ids: tuple[int, ...] = ()
    completion_ids: tuple[int, ...] = ()
    chosen: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.stop_reason in ("final", "eos")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["actions"] = [{**asdict(a), "result": a.result.to_json()} for a in self.actions]
        data["stats"]["tokens_per_s"] = self.stats.tokens_per_s
        data["ok"] = self.ok
        return data


@dataclass(frozen=True)
class DoneEvent:
    result: Result
    kind: Literal["done"] = "done"


Event = (
    TokenEvent
    | TransitionEvent
    | ActionStarted
    | ActionFinished
    | InjectedEvent
    | DoneEvent
    | HealedEvent
)


@dataclass(frozen=True)
class RowEvent:
    """An event of one (task, sample) of a batch; `row` is its engine row."""

    row: int
    task_index: int
    sample: int
    event: Event
