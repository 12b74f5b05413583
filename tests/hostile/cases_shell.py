"""Shell allow-list bypasses: each line would run an unlisted command (printing PWNED and
writing a marker outside the working directory) if the check and bash disagreed."""

from __future__ import annotations

import os
from collections.abc import Callable

from llmos_grammar.results import ActionResult
from tests.hostile.cases import Case, Context

MARK = "PWNED"


def _payload(ctx: Context) -> str:
    return f"echo {MARK}; echo {MARK} > {ctx.outside}/shell-marker"


def _refused(r: ActionResult, ctx: Context) -> str | None:
    marker = os.path.join(ctx.outside, "shell-marker")
    if os.path.exists(marker):
        os.remove(marker)
        return "the unlisted command ran: it wrote the marker"
    if MARK in r.stdout:
        return f"the unlisted command ran: {r.stdout[:80]!r}"
    if r.refused is None:
        return f"expected a refusal before bash runs, got {r.status}"
    return None


def _case(name: str, commands: tuple[str, ...], text: Callable[[Context], str]) -> Case:
    return Case(
        name,
        "shell",
        text,
        _refused,
        overrides={"commands": commands},
        expect=f"refused before bash runs (commands: {', '.join(commands)}); no marker",
    )


CASES: tuple[Case, ...] = (
    _case("shell_comment_newline", ("ls",), lambda ctx: f"ls #\n{_payload(ctx)}"),
    _case(
        "shell_prompt_expansion",
        ("echo",),
        lambda ctx: f"x='$({_payload(ctx)})'; echo ${{x@P}}",
    ),
    _case(
        "shell_find_exec",
        ("find",),
        lambda ctx: f"find . -maxdepth 0 -exec sh -c '{_payload(ctx)}' \\;",
    ),
    _case(
        "shell_sed_e_flag",
        ("echo", "sed"),
        lambda ctx: f"echo x | sed 's|x|{_payload(ctx)}|e'",
    ),
    _case(
        "shell_awk_system",
        ("awk",),
        lambda ctx: f"awk 'BEGIN {{ system(\"{_payload(ctx)}\") }}'",
    ),
    _case("shell_eval_listed", ("eval", "echo"), lambda ctx: f"eval '{_payload(ctx)}'"),
    _case("shell_variable_command", ("ls",), lambda ctx: f"x=sh; $x -c '{_payload(ctx)}'"),
    _case("shell_ansi_c_name", ("ls",), lambda ctx: f"$'\\x73\\x68' -c '{_payload(ctx)}'"),
    _case(
        "shell_function_shadow",
        ("ls",),
        lambda ctx: f"ls() {{ {_payload(ctx)}; }}; ls",
    ),
    Case(
        "shell_listed_runs",
        "shell",
        lambda _: "ls -d . | cat",
        lambda r, _: None if r.ok and r.stdout == ".\n" else f"a listed line failed: {r.status}",
        overrides={"commands": ("ls", "cat")},
        expect="runs: a line of listed commands is not refused",
    ),
)
