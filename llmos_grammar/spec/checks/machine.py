"""State-machine checks on a compiled spec: references, reachability, triggers."""

from __future__ import annotations

import difflib
import string
from collections.abc import Callable, Iterable, Mapping

from llmos_grammar.errors import Diagnostic, Severity
from llmos_grammar.ir import (
    ActionState,
    FinalState,
    GrammarState,
    Machine,
    State,
    TextState,
    Transition,
)
from llmos_grammar.results import ActionResult
from llmos_grammar.spec.schemas import crumb
from llmos_grammar.spec.yamldoc import Doc, Key

TEMPLATE_FIELDS = frozenset(ActionResult().template_fields())


def edges(state: State) -> list[tuple[Key, str]]:
    """(path of the reference inside the state, target state) for each way out."""
    if isinstance(state, TextState):
        out: list[tuple[Key, str]] = list(
            dict.fromkeys((target_path(t), t.target) for t in state.triggers)
        )
        if state.on_eos is not None:
            out.append((("eos",), state.on_eos))
        return out
    if isinstance(state, GrammarState):
        return [(("next",), state.next)]
    if isinstance(state, ActionState):
        out = [(("next",), state.next)]
        if state.on_error is not None:
            out.append((("on_error",), state.on_error))
        return out
    return []


def trigger_path(t: Transition) -> Key:
    """Where trigger `t` is written inside its state."""
    return t.path or ("on", t.trigger)


def target_path(t: Transition) -> Key:
    """Where the target of trigger `t` is written: the mapping's value or the entry's `to`."""
    path = trigger_path(t)
    return ("on", path[1], "to") if len(path) > 2 else path


def _spellings(a: Transition, b: Transition) -> bool:
    """Whether `a` and `b` are written in the same `when:` list of the list form."""
    return len(a.path) == 4 and a.path[:2] == b.path[:2]


class Analysis:
    """Collects the diagnostics of one spec's state machine."""

    def __init__(self, doc: Doc, machine: Machine, *, policy_known: bool = True):
        self.doc = doc
        self.machine = machine
        self.start = machine.start
        self.states = machine.states
        self.policy = machine.policy if policy_known else None
        self.found: list[Diagnostic] = []

    def run(self) -> list[Diagnostic]:
        self._references()
        if not any(d.code == "unknown-state" for d in self.found):
            self._reachability()  # would only repeat the unknown references
        self._triggers()
        self._actions()
        self._templates()
        self._session()
        return self.found

    def error(self, message: str, path: Key, code: str, hint: str = "", key: bool = False) -> None:
        self._add("error", message, path, code, hint, key)

    def warning(
        self, message: str, path: Key, code: str, hint: str = "", key: bool = False
    ) -> None:
        self._add("warning", message, path, code, hint, key)

    def _add(
        self, severity: Severity, message: str, path: Key, code: str, hint: str, key: bool
    ) -> None:
        where = self.doc.loc(path, key=key)
        self.found.append(Diagnostic(severity, message, where, crumb(path), code, hint))

    def _unknown_state(self, name: str, path: Key) -> None:
        self.error(f"unknown state {name!r}", path, "unknown-state", suggest(name, self.states))

    def _references(self) -> None:
        if self.start not in self.states:
            self._unknown_state(self.start, ("start",))
        vote = self.machine.samples.vote
        if vote is not None and vote not in self.states:
            self._unknown_state(vote, ("samples", "vote"))
        for name, state in self.states.items():
            for path, target in edges(state):
                if target not in self.states:
                    self._unknown_state(target, ("states", name, *path))
            if isinstance(state, ActionState):
                self._input(name, state)
                self._feeders(name, state)

    def _session(self) -> None:
        window = self.machine.session.max_context
        reply = self.machine.budgets.max_tokens
        if window is not None and window <= reply:
            self.error(
                f"session.max_context ({window}) leaves no room for a turn: "
                f"a reply may take limits.max_tokens ({reply}) tokens",
                ("session", "max_context"),
                "session-context",
                "raise session.max_context above limits.max_tokens, or lower limits.max_tokens",
            )

    def _input(self, name: str, state: ActionState) -> None:
        source = self.states.get(state.input)
        path: Key = ("states", name, "input")
        if source is None:
            self._unknown_state(state.input, path)
        elif not isinstance(source, GrammarState | TextState):
            self.error(
                f"input {state.input!r} is a {source.type} state, which produces no text",
                path,
                "bad-input",
                "name the grammar or text state whose text the action runs",
            )

    def _feeders(self, name: str, state: ActionState) -> None:
        """A grammar state that leads into this action, other than its input, is a mistake:
        the action would run the input state's older text, not what was just written."""
        for other, source in self.states.items():
            if other == state.input or not isinstance(source, GrammarState):
                continue
            if source.next == name:
                self.warning(
                    f"grammar state {other!r} leads to action {name!r}, whose input is "
                    f"{state.input!r}: the action would not run {other!r}'s text",
                    ("states", other, "next"),
                    "input-mismatch",
                    f"give {other!r} an action state of its own with `input: {other}`",
                )

    def _reachability(self) -> None:
        if not any(isinstance(s, FinalState) for s in self.states.values()):
            self.error("no final state", ("states",), "no-final", "add a state with type: final")
            return
        reached = walk([self.start], lambda n: (t for _, t in edges(self.states[n])), self.states)
        for name in self.states:
            if name not in reached and self.start in self.states:
                self.warning(
                    f"state {name!r} is unreachable from {self.start!r}",
                    ("states", name),
                    "unreachable-state",
                    "remove it, or add a transition to it",
                    key=True,
                )
        incoming: dict[str, list[str]] = {n: [] for n in self.states}
        for name, state in self.states.items():
            for _, target in edges(state):
                incoming.setdefault(target, []).append(name)
        finals = [n for n, s in self.states.items() if isinstance(s, FinalState)]
        ending = walk(finals, lambda n: incoming.get(n, ()), self.states)
        for name in sorted(reached - ending):
            self.error(
                f"no final state can be reached from state {name!r}",
                ("states", name),
                "dead-end",
                "add a transition (e.g. `eos: end`) that leads to a final state",
                key=True,
            )

    def _triggers(self) -> None:
        for name, state in self.states.items():
            if isinstance(state, TextState):
                self._state_triggers(name, state.triggers)

    def _state_triggers(self, name: str, triggers: tuple[Transition, ...]) -> None:
        """Empty, repeated and prefix-overlapping triggers of one text state. The spellings of
        one list entry may be prefixes of each other: the longer fires when written whole."""
        seen: dict[str, Transition] = {}
        for t in sorted(triggers, key=lambda t: t.path):  # in the order written
            path: Key = ("states", name, *trigger_path(t))
            key = len(path) == 4  # the mapping form: point at the key
            if not t.trigger:
                self.error("empty trigger", path, "empty-trigger", key=key)
            elif t.trigger in seen:
                hint = "list each trigger once"
                self.error(
                    f"trigger {t.trigger!r} is listed twice",
                    path,
                    "duplicate-trigger",
                    hint,
                    key=key,
                )
            else:
                seen[t.trigger] = t
        for t in seen.values():
            # Look up each proper prefix: linear in the triggers, not quadratic.
            heads = (t.trigger[:n] for n in range(1, len(t.trigger)))
            found = [seen[h] for h in heads if h in seen and not _spellings(t, seen[h])]
            shorter = [other.trigger for other in sorted(found, key=lambda o: o.path)]
            if shorter:
                path = ("states", name, *trigger_path(t))
                self.error(
                    f"trigger {t.trigger!r} can never fire: {shorter[0]!r} is a prefix of it",
                    path,
                    "trigger-prefix",
                    "make the triggers prefix-free, e.g. [SQL] and [SQLW], or list spellings "
                    "of one trigger in one entry: `on: [{when: [...], to: STATE}]`",
                    key=len(path) == 4,
                )

    def _actions(self) -> None:
        if self.policy is None:
            return
        for name, state in self.states.items():
            if isinstance(state, ActionState) and state.action not in self.policy.actions:
                self.error(
                    f"action {state.action!r} is not in the policy {self.policy.path}",
                    ("states", name, "action"),
                    "unknown-action",
                    suggest(state.action, self.policy.actions)
                    or f"add `{state.action}:` under `actions:` in the policy",
                )

    def _templates(self) -> None:
        for name, state in self.states.items():
            if isinstance(state, ActionState):
                self._template(state.output, ("states", name, "output"), TEMPLATE_FIELDS)
                if state.error_output is not None:
                    self._template(
                        state.error_output, ("states", name, "error_output"), TEMPLATE_FIELDS
                    )

    def _template(self, text: str, path: Key, allowed: Iterable[str]) -> None:
        for message in template_problems(text, allowed):
            hint = (
                "write {{ and }} for literal braces" if message.startswith("bad template") else ""
            )
            self.error(message, path, "bad-template", hint)


def template_problems(text: str, allowed: Iterable[str]) -> list[str]:
    """Problems of a str.format template whose fields must be in `allowed`."""
    allowed = set(allowed)
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        return [f"bad template: {exc}"]
    problems = []
    for field_name in fields:
        base = field_name.split(".")[0].split("[")[0]
        if base not in allowed:
            near = difflib.get_close_matches(base, sorted(allowed), n=1)
            tip = f" (did you mean {{{near[0]}}}?)" if near else ""
            problems.append(f"unknown template field {{{field_name}}}{tip}")
    return problems


def walk(
    roots: Iterable[str], step: Callable[[str], Iterable[str]], known: Mapping[str, State]
) -> set[str]:
    """Names reachable from `roots` by `step(name) -> names`, inside `known`."""
    seen: set[str] = set()
    todo = [r for r in roots if r in known]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(n for n in step(name) if n in known and n not in seen)
    return seen


def suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else ""
