"""Scoring a run against its task: the answer scorer and the tests scorer.

answer: the task's answer must appear in the final answer (numbers match as
numbers: 5050 matches "5,050" and "5050.0"; strings case-insensitively).
tests: the program the model wrote, then the task's tests, then
`check(entry_point)`, run in the sandbox by the spec's python action under the
spec's policy; the task is solved when that exits 0.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from llmos_grammar.errors import TaskError
from llmos_grammar.eval.outcomes import Outcome, action_outcome, unsolved_outcome
from llmos_grammar.eval.tasks import Task
from llmos_grammar.ir import ActionState, Machine, Policy
from llmos_grammar.runtime.vote import final_answer, find_numbers, voted_text

if TYPE_CHECKING:
    from llmos_grammar.actions import ActionResult, ActionRunner
    from llmos_grammar.runtime.events import Result

FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Score:
    """How one sample did: solved or not, why, and the text it answered with."""

    solved: bool
    outcome: Outcome
    final: str  # the final answer (answer scorer) or the program (tests scorer)
    detail: str = ""  # what went wrong, in one line


def answer_matches(text: str, answer: float | int | str) -> bool:
    """Whether `answer` appears in `text` (numbers as numbers, strings case-insensitively)."""
    if isinstance(answer, str):
        return " ".join(answer.split()).casefold() in " ".join(text.split()).casefold()
    return any(
        abs(float(value) - answer) <= 1e-6 * max(1.0, abs(answer))
        for _, value in find_numbers(text)
    )


def python_action(machine: Machine) -> str:
    """The action that runs programs: the one the spec's code state feeds, else the first python."""
    handlers = {name: ap.handler for name, ap in machine.policy.actions.items()}
    for state in machine.states.values():
        if isinstance(state, ActionState) and handlers.get(state.action) == "python":
            return state.action
    for name, handler in handlers.items():
        if handler == "python":
            return name
    raise TaskError(
        f"the tests scorer runs programs with a python action; "
        f"policy {machine.policy.path} has none"
    )


class Scorer:
    """Scores the results of one machine. `plain`: the machine is the plain baseline.

    The llmos machine answers with its voted text (the `samples.vote` state, else
    the text after the last action output) and its program is the input of its
    last python action; the plain model answers with its whole reply, and its
    program is the code in that reply (a fenced block when there is one).
    """

    def __init__(self, machine: Machine, *, plain: bool = False, action: str | None = None) -> None:
        self.machine = machine
        self.plain = plain
        self.expects_action = not plain and any(
            isinstance(s, ActionState) for s in machine.states.values()
        )
        self.action = action
        self._runner: ActionRunner | None = None

    def final(self, result: Result) -> str:
        return result.text if self.plain else voted_text(result, self.machine)

    def score(self, task: Task, result: Result) -> Score:
        if task.scorer == "tests":
            return self._score_tests(task, result)
        final = self.final(result)
        if task.answer is not None and answer_matches(final, task.answer):
            return Score(True, "solved", final)
        return Score(False, unsolved_outcome(result, self.expects_action), final, result.message)

    # ---- tests ----------------------------------------------------------------
    def program(self, result: Result) -> str:
        if self.plain:
            blocks = FENCE.findall(result.text)
            return blocks[-1] if blocks else result.text
        name = self.action or python_action(self.machine)
        inputs = [a.input for a in result.actions if a.action == name]
        return inputs[-1] if inputs else ""

    def _score_tests(self, task: Task, result: Result) -> Score:
        program = self.program(result)
        if not program.strip():
            outcome = unsolved_outcome(result, self.expects_action)
            return Score(False, outcome, final_answer(result), result.message)
        run = self.run_tests(task, program)
        failed = action_outcome(run)
        if failed is None:
            return Score(True, "solved", program)
        if failed == "exception" and "AssertionError" in run.stderr:
            failed = "wrong answer"
        return Score(False, failed, program, _last_line(run.stderr) or run.status)

    def run_tests(self, task: Task, program: str) -> ActionResult:
        """Run program + tests + check(entry_point) with the spec's python action."""
        name = self.action or python_action(self.machine)
        return self._action_runner().run(name, scored_program(task, program))

    def _action_runner(self) -> ActionRunner:
        if self._runner is None:
            from llmos_grammar.actions import ActionRunner

            self._runner = ActionRunner(_one_shot(self.machine.policy))
        return self._runner

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None


def scored_program(task: Task, program: str) -> str:
    """The program the tests scorer runs.

    A task whose text is itself Python that defines a function or class
    (HumanEval's prompt: imports, signature, docstring) comes first, so its
    imports hold and the model's definition replaces the stub.
    """
    prefix = task.text.rstrip() + "\n\n" if _is_python(task.text) else ""
    return f"{prefix}{program.rstrip()}\n\n{task.tests.rstrip()}\n\ncheck({task.entry_point})\n"


def _is_python(text: str) -> bool:
    """Python source that defines something (a prompt, not a sentence that happens to parse)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    defines = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return any(isinstance(node, defines) for node in tree.body)


def _one_shot(policy: Policy) -> Policy:
    """The policy with persistent python sessions turned off: tests never share variables."""
    actions = {
        name: replace(ap, persistent=False) if ap.persistent else ap
        for name, ap in policy.actions.items()
    }
    return replace(policy, actions=actions)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
