"""The plain baseline: the same model and chat template, the task as the user turn, no spec."""

from __future__ import annotations

from dataclasses import replace

from llmos_grammar.ir import Budgets, FinalState, Machine, Prompt, Samples, State, TextState


def plain_machine(machine: Machine) -> Machine:
    """One free text state that ends at EOS: no system text, no prefix, no actions.

    It keeps the spec's model, chat template setting, token budget and wall
    clock, so both sides get the same room to answer.
    """
    states: dict[str, State] = {
        "answer": TextState("answer", on_eos="end"),
        "end": FinalState("end"),
    }
    budgets = machine.budgets
    return replace(
        machine,
        name=f"{machine.name} (plain)",
        start="answer",
        states=states,
        prompt=Prompt(system="", chat_template=machine.prompt.chat_template),
        budgets=Budgets(max_tokens=budgets.max_tokens, max_actions=0, wall_s=budgets.wall_s),
        samples=Samples(machine.samples.n, machine.samples.temperature, vote=None),
        tests=(),
    )
