"""Prompt checks: the user template's fields."""

from __future__ import annotations

from llmos_grammar.errors import Diagnostic
from llmos_grammar.ir import Prompt
from llmos_grammar.spec.checks.machine import template_problems
from llmos_grammar.spec.schemas import crumb
from llmos_grammar.spec.yamldoc import Doc, Key

USER: Key = ("prompt", "user")


def prompt_problems(doc: Doc, prompt: Prompt) -> list[Diagnostic]:
    """Unknown fields in the user template, and a template that drops the task."""
    where, path = doc.loc(USER), crumb(USER)
    found = [
        Diagnostic("error", m, where, path, "bad-template")
        for m in template_problems(prompt.user, {"task"})
    ]
    if not found and "{task}" not in prompt.user:
        message = "the user template does not contain {task}"
        found.append(Diagnostic("warning", message, where, path, "no-task"))
    return found
