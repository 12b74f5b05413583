"""The decode loop on a tiny random model: every state type, triggers, forced text, budgets."""

from __future__ import annotations

from typing import Any

import pytest

from llmos_grammar.errors import DecodeError
from llmos_grammar.ir import (
    ActionState,
    Budgets,
    FinalState,
    GrammarState,
    Prompt,
    TextState,
    Transition,
)
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime import (
    ActionFinished,
    ActionStarted,
    DoneEvent,
    InjectedEvent,
    Runtime,
    TokenEvent,
    TransitionEvent,
)
from tests.test_runtime_helpers import FakeRunner, Script, lark, machine, tiny_model, token_id

CODE = lark('start: "print(" /[0-9]+/ ")\\n"\n')


def calc_machine(**kw: object) -> object:
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
            next="talk",
            on_error="code",
            error_output="\n[ERROR]\n{stderr}[/ERROR]\n[CODE]",
        ),
        "end": FinalState("end"),
    }
    return machine(states, "talk", prompt=Prompt(system="sys"), **kw)


def run(m: object, pieces: list[str], runner: FakeRunner, **kw: object) -> tuple:
    script = Script(pieces)
    rt = Runtime(m, tiny_model(), runner=runner, logits_processors=[script], **kw)  # type: ignore[arg-type]
    events = list(rt.stream("task"))
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done.result, events, script


def test_split_trigger_grammar_action_and_resume() -> None:
    runner = FakeRunner(ActionResult(stdout="42\n"))
    # "[" + "CO" is an unambiguous start of "[CODE]": the rest is forced
    pieces = ["Sure", " [", "CO", "4", "2", ")", " Done", "."]
    result, events, script = run(calc_machine(), pieces, runner)
    assert result.stop_reason == "final", result.message
    assert runner.calls == [("python", "print(42)\n")]
    assert result.text == "Sure [CODE]\nprint(42)\n[/CODE]\n[OUTPUT]\n42\n[/OUTPUT]\n Done."
    kinds = [type(e) for e in events]
    assert ActionStarted in kinds and ActionFinished in kinds and InjectedEvent in kinds
    moves = [(e.source, e.target) for e in events if isinstance(e, TransitionEvent)]
    assert moves == [("talk", "code"), ("code", "run"), ("run", "talk"), ("talk", "end")]
    # "print(" at entry and ")\n[/CODE]" after ")" are forced by the grammar:
    # only the digits and ")" were sampled in the code state
    assert [s for s, _ in script.calls].count("code") == 3
    assert result.actions[0].output == "\n[OUTPUT]\n42\n[/OUTPUT]\n"


def test_forced_text_costs_one_forward_each() -> None:
    runner = FakeRunner(ActionResult(stdout="42\n"))
    pieces = ["[", "CO", "4", "2", ")", "ok"]
    result, _, _ = run(calc_machine(), pieces, runner)
    stats = result.stats
    # one forward for the prompt and one per sampled token; forced completions
    # ride along with the token that triggered them, injected output with the next step
    assert stats.forward_passes == stats.generated_tokens
    assert stats.forced_tokens > 5


def test_trigger_inside_one_token_drops_overshoot() -> None:
    m = calc_machine()
    talk = TextState("talk", triggers=(Transition("]", "code"),), on_eos="end")
    m = type(m)(**{**m.__dict__, "states": {**m.states, "talk": talk}})
    runner = FakeRunner(ActionResult(stdout="1\n"))
    # the token "]." completes the trigger "]" and overshoots by "."
    pieces = ["Go", " [", "x", "].", "1", ")", "."]
    result, _, _ = run(m, pieces, runner)
    assert runner.calls == [("python", "print(1)\n")]
    assert result.text.startswith("Go [x]\nprint(1)\n[/CODE]")


def test_action_error_goes_to_on_error_with_error_output() -> None:
    runner = FakeRunner(ActionResult(stderr="boom\n", exit_code=1), ActionResult(stdout="7\n"))
    pieces = ["[", "CO", "1", ")", "7", ")", "x"]
    result, _, _ = run(calc_machine(), pieces, runner)
    assert [c[1] for c in runner.calls] == ["print(1)\n", "print(7)\n"]
    assert "[ERROR]\nboom\n[/ERROR]\n[CODE]\nprint(7)\n[/CODE]\n[OUTPUT]\n7\n" in result.text
    assert result.stop_reason == "final"


def test_refused_action_stops_a_run_with_nowhere_to_go() -> None:
    from dataclasses import replace

    m = calc_machine()
    states = dict(m.states)  # type: ignore[attr-defined]
    states["run"] = replace(states["run"], on_error=None, error_output=None)
    runner = FakeRunner(ActionResult(exit_code=None, refused="not approved"))
    result, _, _ = run(replace(m, states=states), ["[", "CO", "1", ")"], runner)  # type: ignore[type-var]
    assert result.stop_reason == "refused"
    assert "not approved" in result.message


def test_refused_action_is_told_to_the_model_when_on_error_is_set() -> None:
    refused = ActionResult(exit_code=None, refused="not approved")
    runner = FakeRunner(refused, ActionResult(stdout="7\n"))
    pieces = ["[", "CO", "1", ")", "7", ")", "x"]
    m = calc_machine()
    states = dict(m.states)  # type: ignore[attr-defined]
    from dataclasses import replace

    states["run"] = replace(states["run"], error_output="\n[ERROR]\n{error}[/ERROR]\n[CODE]")
    result, _, _ = run(replace(m, states=states), pieces, runner)  # type: ignore[type-var]
    assert "[ERROR]\nrefused: not approved\n[/ERROR]\n[CODE]\nprint(7)" in result.text
    assert result.stop_reason == "final" and result.actions[0].result.refused == "not approved"


@pytest.mark.parametrize(
    ("budgets", "reason"),
    [
        (Budgets(max_tokens=3), "max_tokens"),
        (Budgets(max_actions=0), "max_actions"),
        (Budgets(wall_s=0.0), "wall_s"),
    ],
)
def test_budgets_end_cleanly(budgets: Budgets, reason: str) -> None:
    pieces = ["[", "CO", "1", ")", "x"]
    result, _, _ = run(calc_machine(), pieces, FakeRunner(), budgets=budgets)
    assert result.stop_reason == reason
    assert result.message


def test_state_token_budget() -> None:
    pieces = ["a"] * 30
    result, _, _ = run(calc_machine(), pieces, FakeRunner())
    assert result.stop_reason == "state_max_tokens"
    assert result.stats.generated_tokens == 20


def test_eos_without_on_eos_ends_with_reason_eos() -> None:
    states = {"talk": TextState("talk"), "end": FinalState("end")}
    result, _, _ = run(machine(states, "talk"), ["Hi"], FakeRunner())
    assert result.stop_reason == "eos"
    assert result.text == "Hi"


def test_assistant_prefix_and_open_are_forced_at_start() -> None:
    m = calc_machine()
    m = type(m)(**{**m.__dict__, "start": "code", "prompt": Prompt(assistant_prefix="[CODE]")})
    runner = FakeRunner(ActionResult(stdout="5\n"))
    result, events, _ = run(m, ["5", ")"], runner)
    assert result.text.startswith("[CODE]\nprint(5)\n[/CODE]")
    assert runner.calls == [("python", "print(5)\n")]
    forced = [e.text for e in events if isinstance(e, TokenEvent) and e.forced]
    assert forced[:2] == ["[CODE]", "\n"]


def test_grammar_rejecting_a_token_raises_decode_error() -> None:
    bad = token_id("x")
    script = Script(["[", "CO"])

    def force_x_in_code(state: str, text: str, logits: Any) -> None:
        if state == "code":  # after the mask: a token the grammar forbids wins anyway
            logits[bad] = 1e4
        else:
            script(state, text, logits)

    rt = Runtime(
        calc_machine(), tiny_model(), runner=FakeRunner(), logits_processors=[force_x_in_code]
    )  # type: ignore[arg-type]
    with pytest.raises(DecodeError) as info:
        rt.run("task")
    assert info.value.state == "code" and info.value.token == bad and info.value.step == 1
    assert "rejected" in str(info.value)


def test_matcher_error_during_masking_raises_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmos_grammar.constraints import BACKENDS
    from llmos_grammar.constraints.backend import MatcherError

    class Broken:
        backend = "broken"

        def forced(self) -> list[int]:
            return []

    class BrokenCompiled:
        def new(self) -> Broken:
            return Broken()

    class BrokenBackend:  # its matchers are in their error state when asked for a mask
        def fill_masks(self, rows: list[tuple[Broken, int]], bits: object) -> dict[int, Exception]:
            return {row: MatcherError("parser exploded") for _, row in rows}

    monkeypatch.setitem(BACKENDS, "broken", BrokenBackend())  # type: ignore[arg-type]

    rt = Runtime(
        calc_machine(), tiny_model(), runner=FakeRunner(), logits_processors=[Script(["[", "CO"])]
    )  # type: ignore[arg-type]
    rt.constraints["code"] = BrokenCompiled()  # type: ignore[assignment]
    with pytest.raises(DecodeError) as info:
        rt.run("task")
    assert "parser exploded" in str(info.value) and info.value.state == "code"


def test_a_state_with_its_own_sampling_samples_reproducibly() -> None:
    from dataclasses import replace

    from llmos_grammar.ir import Sampling

    def text(state_sampling: Sampling | None) -> str:
        states = {
            "talk": TextState("talk", on_eos="end", max_tokens=8, sampling=state_sampling),
            "end": FinalState("end"),
        }
        m = machine(states, "talk", prompt=Prompt(system="sys"))
        m = replace(m, sampling=Sampling(temperature=0.0, seed=7))
        result = Runtime(m, tiny_model(), runner=FakeRunner()).run("task")
        return result.text

    greedy = text(None)
    assert text(None) == greedy
    hot = Sampling(temperature=1.5)
    sampled = text(hot)
    assert sampled == text(hot)  # the run's seed makes it reproducible
    assert sampled != greedy
