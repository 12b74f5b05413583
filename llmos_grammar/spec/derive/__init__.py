"""Grammars derived from the policy (`derive: policy`): the language of what the action allows.

A grammar state that says `derive: policy` is constrained by a grammar built from the policy
entry of the action that consumes it (the action state whose `input` is the state), read at
check and load time: a SELECT typed by the database's schema (sqlite), command lines of the
listed commands (shell), paths under the readable folders (files), allowed methods and URL
prefixes (http).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from llmos_grammar.errors import GrammarError, Location
from llmos_grammar.ir import ActionPolicy, GrammarSource, Policy
from llmos_grammar.spec.derive import files, http, shell, sqlite
from llmos_grammar.spec.yamldata import YamlValue

Deriver = Callable[[ActionPolicy, Location], GrammarSource]
DERIVERS: dict[str, Deriver] = {
    "sqlite": sqlite.derive,
    "shell": shell.derive,
    "files": files.derive,
    "http": http.derive,
}


def consumer(name: str, states: Mapping[str, YamlValue]) -> str | None:
    """The action of the (first) action state whose `input` is the state `name`."""
    for raw in states.values():
        if isinstance(raw, dict) and raw.get("type") == "action" and raw.get("input") == name:
            return str(raw.get("action"))
    return None


def derive_source(
    name: str, states: Mapping[str, YamlValue], policy: Policy | None, where: Location
) -> GrammarSource:
    """The grammar of state `name` derived from its consumer's policy entry; GrammarError at
    `where` when there is no consumer, no such action, or nothing to derive from."""
    action = consumer(name, states)
    if action is None:
        raise GrammarError(f"`derive: policy` needs an action state with `input: {name}`", where)
    if policy is None:
        raise GrammarError("`derive: policy` needs the policy, which did not load", where)
    entry = policy.actions.get(action)
    if entry is None:
        raise GrammarError(f"action {action!r} is not in the policy {policy.path}", where)
    deriver = DERIVERS.get(entry.handler)
    if deriver is None:
        known = ", ".join(DERIVERS)
        message = f"cannot derive a grammar for handler {entry.handler!r} (only {known})"
        raise GrammarError(message, where)
    return deriver(entry, where)
