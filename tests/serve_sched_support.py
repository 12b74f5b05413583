"""Shared pieces of the scheduler's tests: answers read from tickets, machines with real actions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from llmos_grammar.ir import (
    ActionState,
    Approval,
    Budgets,
    FinalState,
    GrammarState,
    Machine,
    Policy,
)
from llmos_grammar.serve.scheduler import BatchScheduler
from llmos_grammar.serve.types import (
    ChoiceDone,
    GenerationRequest,
    LlmosDelta,
    Message,
    RequestDone,
    RequestFailed,
    ServeEvent,
    TextDelta,
    Ticket,
    ToolCallDelta,
)
from tests.test_runtime_helpers import lark

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Answer:
    """A ticket's events, read to the end, and what they say."""

    events: tuple[ServeEvent, ...]

    @property
    def choices(self) -> list[ChoiceDone]:
        return sorted((e for e in self.events if isinstance(e, ChoiceDone)), key=lambda c: c.choice)

    @property
    def done(self) -> RequestDone:
        last = self.events[-1]
        assert isinstance(last, RequestDone), f"the request failed: {last}"
        return last

    @property
    def failed(self) -> RequestFailed:
        last = self.events[-1]
        assert isinstance(last, RequestFailed), f"the request did not fail: {last}"
        return last

    @property
    def text(self) -> str:
        return self.choices[0].content

    def streamed(self, choice: int = 0) -> str:
        return "".join(
            e.text for e in self.events if isinstance(e, TextDelta) and e.choice == choice
        )

    def records(self) -> list[dict[str, object]]:
        return [dict(e.record) for e in self.events if isinstance(e, LlmosDelta)]

    def calls(self) -> list[ToolCallDelta]:
        return [e for e in self.events if isinstance(e, ToolCallDelta)]


async def read(ticket: Ticket) -> Answer:
    return Answer(tuple([e async for e in ticket.events()]))


def ask(scheduler: BatchScheduler, request: GenerationRequest) -> Answer:
    """Submit one request and read its answer on a fresh event loop."""

    async def go() -> Answer:
        return await read(scheduler.submit(request))

    return asyncio.run(go())


def chat(model: str, *turns: str, **kw: object) -> GenerationRequest:
    """A chat request: turns alternate user, assistant, user, ... (the last a user's)."""
    roles = ["user", "assistant"]
    messages = tuple(Message(roles[k % 2], t) for k, t in enumerate(turns))  # type: ignore[arg-type]
    return GenerationRequest(model, messages, **kw)  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.01)


def action_machine(
    name: str, code: str, *, confirm: Approval = "never", max_tokens: int = 64
) -> Machine:
    """A spec whose reply is exactly `code` (forced by its grammar), run by the default
    policy's python action in the real sandbox; its output is injected, then the run ends."""
    from llmos_grammar.spec.loader import load_policy

    policy = load_policy(ROOT / "policies" / "default.yaml")
    python = replace(policy.actions["python"], confirm=confirm)
    states = {
        "code": GrammarState("code", lark("start: " + json.dumps(code)), "[/CODE]", "run"),
        "run": ActionState("run", "python", "code", "\n[OUTPUT]\n{stdout}[/OUTPUT]", "end"),
        "end": FinalState("end"),
    }
    return Machine(
        name=name,
        path=f"<{name}>",
        start="code",
        states=states,
        policy=Policy(policy.path, {"python": python}),
        budgets=Budgets(max_tokens=max_tokens),
    )


def texts(answers: Sequence[Answer]) -> list[str]:
    return [a.text for a in answers]
