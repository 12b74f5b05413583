"""Many runs at once on a tiny random model: each row equals its run alone."""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

import pytest

from llmos_grammar.ir import (
    ActionState,
    Budgets,
    FinalState,
    GrammarState,
    Machine,
    Prompt,
    Sampling,
    TextState,
    Transition,
)
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime import ActionStarted, DoneEvent, Result, Runtime, TransitionEvent
from tests.test_runtime_helpers import lark, machine, tiny_model, token_id, tokenizer

CODE = lark('start: "print(" /[0-9]+/ ")\\n"\n')
TASKS = [
    "Add two numbers.",
    "What is 7 times 6? Please compute it with code.",
    "Hi",
    "Compute the sum of all integers from one to ten, then explain the result in words.",
    "x",
]


def calc_machine() -> Machine:
    states = {
        "talk": TextState(
            "talk", triggers=(Transition("[CODE]", "code"),), on_eos="end", max_tokens=20
        ),
        "code": GrammarState("code", CODE, close="[/CODE]", next="run", open="\n", max_tokens=20),
        "run": ActionState(
            "run",
            "python",
            "code",
            output="\n[OUTPUT]\n{stdout}[/OUTPUT]\n",
            next="answer",
            on_error="code",
            error_output="\n[ERROR]\n{stderr}[/ERROR]\n[CODE]",
        ),
        "answer": TextState("answer", on_eos="end", max_tokens=30),
        "end": FinalState("end"),
    }
    return machine(states, "talk", prompt=Prompt(system="sys"))


def steer(state: str, text: str, logits: Any) -> None:
    """Lets the random model choose, but opens code after 6 bytes (a trigger split in two
    tokens), closes the number after 2 digits and ends the answer after 12 bytes."""
    if state == "talk" and len(text.encode()) >= 6:
        logits[token_id("CO") if text.endswith(" [") else token_id(" [")] += 1e4
    elif state == "code" and len(re.sub(r"\D", "", text)) >= 2:
        logits[token_id(")")] += 1e4
    elif state == "answer" and len(text.encode()) >= 12:
        logits[tokenizer().eos_token_id] += 1e4


class Calculator:
    """An action whose result depends only on its input: numbers divisible by 3 fail."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def run(self, action: str, text: str) -> ActionResult:
        with self.lock:
            self.calls.append(text)
        n = int(re.sub(r"\D", "", text) or 0)
        if n % 3 == 0:
            return ActionResult(stderr=f"{n} is bad\n", exit_code=1)
        return ActionResult(stdout=f"{2 * n}\n")

    def close(self) -> None:
        pass


@functools.lru_cache(maxsize=1)
def varied_model() -> Any:
    """Like tiny_model, with larger random weights: its greedy text depends on the prompt."""
    import torch
    from transformers import LlamaForCausalLM

    from llmos_grammar.models import wrap

    config = tiny_model().model.config.__class__(
        **{**tiny_model().model.config.to_dict(), "initializer_range": 0.5}
    )
    torch.manual_seed(1)
    return wrap(LlamaForCausalLM(config).eval(), tokenizer(), name="varied-random-llama")


def runtime(m: Machine | None = None, **kw: Any) -> Runtime:
    return Runtime(
        m or calc_machine(), varied_model(), runner=Calculator(), logits_processors=[steer], **kw
    )


@pytest.fixture(scope="module")
def alone() -> list[Result]:
    rt = runtime()
    return [rt.run(task) for task in TASKS]


@pytest.mark.parametrize("size", [2, 3, 8])
def test_every_row_equals_its_run_alone(alone: list[Result], size: int) -> None:
    rt = runtime()
    results = rt.run_batch(TASKS, batch=size)
    assert [len(r) for r in results] == [1] * len(TASKS)
    for single, [batched] in zip(alone, results, strict=True):
        assert batched.completion_ids == single.completion_ids
        assert batched.text == single.text
        assert batched.stop_reason == single.stop_reason
        assert batched.chosen == single.chosen
        assert [a.input for a in batched.actions] == [a.input for a in single.actions]
    # the set exercises what batching must get right
    assert {r.stop_reason for r in alone} == {"final"}
    assert len({len(r.completion_ids) for r in alone}) > 1  # rows end at different times
    assert any(len(r.actions) > 1 for r in alone)  # an error went back to the code state
    assert any("[/CODE]\n[OUTPUT]\n" in r.text for r in alone)


def test_an_action_error_is_routed_to_on_error_in_a_batch() -> None:
    rt = runtime()
    events = list(rt.stream_batch(TASKS, batch=3))
    failed = {
        e.task_index
        for e in events
        if isinstance(e.event, TransitionEvent) and e.event.trigger == "error"
    }
    assert failed
    done = {e.task_index: e.event.result for e in events if isinstance(e.event, DoneEvent)}
    for index in failed:
        assert "[ERROR]\n" in done[index].text and "is bad" in done[index].text


def test_stream_batch_ends_each_row_with_its_done_event_and_overlaps_rows() -> None:
    rt = runtime()
    events = list(rt.stream_batch(TASKS, samples=2, batch=4))
    keys = {(e.task_index, e.sample) for e in events}
    assert keys == {(t, s) for t in range(len(TASKS)) for s in range(2)}
    for key in keys:
        mine = [e.event for e in events if (e.task_index, e.sample) == key]
        assert isinstance(mine[-1], DoneEvent)
        assert sum(isinstance(e, DoneEvent) for e in mine) == 1
    # while one row ran its action, another row's events came in between
    started = next(i for i, e in enumerate(events) if isinstance(e.event, ActionStarted))
    owner = (events[started].task_index, events[started].sample)
    after = [(e.task_index, e.sample) for e in events[started + 1 : started + 4]]
    assert any(k != owner for k in after)


def test_budgets_are_per_row() -> None:
    rt = runtime(budgets=Budgets(max_tokens=4))
    results = rt.run_batch(TASKS, batch=3)
    for [r] in results:
        assert r.stop_reason == "max_tokens"
        assert r.stats.generated_tokens == 4


def test_seeded_samples_differ_and_do_not_depend_on_the_batch_size() -> None:
    states = {"talk": TextState("talk", on_eos="end", max_tokens=6), "end": FinalState("end")}
    m = machine(states, "talk", prompt=Prompt(system="sys"))
    hot = Sampling(temperature=1.5, seed=11)
    rt = Runtime(m, tiny_model(), runner=Calculator())
    wide = rt.run_batch(TASKS[:2], samples=3, batch=6, sampling=hot)
    narrow = rt.run_batch(TASKS[:2], samples=3, batch=1, sampling=hot)
    texts = [[r.completion_ids for r in row] for row in wide]
    assert texts == [[r.completion_ids for r in row] for row in narrow]
    assert len(set(texts[0])) > 1  # samples of one task differ
    # sample 0 of task 0 uses the seed itself, like a single run
    assert wide[0][0].completion_ids == rt.run_batch(TASKS[:1], sampling=hot)[0][0].completion_ids


class Blocking:
    """An action that runs until the runner is closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.started = threading.Event()

    def run(self, action: str, text: str) -> ActionResult:
        self.started.set()
        self.closed.wait(timeout=5)
        return ActionResult(stdout="late\n")

    def close(self) -> None:
        self.closed.set()


def action_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("llmos-action")]


def test_closing_the_stream_early_stops_running_actions() -> None:
    runner = Blocking()
    before = set(action_threads())
    rt = Runtime(calc_machine(), varied_model(), runner=runner, logits_processors=[steer])
    stream = rt.stream_batch(TASKS, batch=2)
    for item in stream:
        if isinstance(item.event, ActionStarted):
            break
    # the action is submitted once its row asks for it: step the others until then
    while not runner.started.is_set():
        next(stream)
    stream.close()
    assert runner.closed.is_set()
    assert set(action_threads()) <= before


def test_keyboard_interrupt_stops_running_actions() -> None:
    runner = Blocking()
    before = set(action_threads())
    later: list[str] = []

    def interrupt(state: str, text: str, logits: Any) -> None:
        steer(state, text, logits)
        if runner.started.is_set():
            later.append(state)  # other rows decode while the action runs
        if later:
            raise KeyboardInterrupt

    rt = Runtime(calc_machine(), varied_model(), runner=runner, logits_processors=[interrupt])
    with pytest.raises(KeyboardInterrupt):
        rt.run_batch(TASKS, batch=3)
    assert runner.closed.is_set()
    assert set(action_threads()) <= before


def test_chosen_marks_only_the_tokens_the_model_sampled_and_kept() -> None:
    from tests.test_runtime import calc_machine as scripted_machine
    from tests.test_runtime_helpers import FakeRunner, Script

    pieces = ["Sure", " [", "CO", "4", "2", ")", " Done", "."]
    rt = Runtime(
        scripted_machine(),  # type: ignore[arg-type]
        tiny_model(),
        runner=FakeRunner(ActionResult(stdout="42\n")),
        logits_processors=[Script(pieces)],
    )
    result = rt.run("task")
    assert result.stop_reason == "final"
    eos = tokenizer().eos_token_id
    kept = [t for t, c in zip(result.completion_ids, result.chosen, strict=True) if c]
    # " [" and "CO" were sampled but re-tokenized with the forced rest of "[CODE]";
    # "print(", ")\n[/CODE]", the output and the state's open text were forced
    assert kept == [token_id(p) for p in ["Sure", "4", "2", ")", " Done", "."]] + [eos]
    assert len(result.chosen) == len(result.completion_ids)
    assert tokenizer().decode(list(result.completion_ids[:-1])) == result.text
    prompt = tokenizer().decode(list(result.prompt_ids))
    assert prompt.endswith("assistant\n") and result.stats.prompt_tokens == len(result.prompt_ids)
