"""The markers a page may hold and what fills them."""

from __future__ import annotations

import re
from collections.abc import Callable

from llmos_docs import cli_ref, diagnostics_ref, examples_ref, exits_ref, schema_ref

GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli_ref.render,
    "spec-keys": lambda: schema_ref.render("spec"),
    "policy-keys": lambda: schema_ref.render("policy"),
    "exit-status": exits_ref.render,
    "diagnostics": diagnostics_ref.render,
    "examples-table": examples_ref.table_md,
    "examples-diagrams": examples_ref.diagrams_md,
}

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


class UnknownMarker(ValueError):
    """A page names a generator that does not exist."""


def fill(markdown: str, where: str) -> str:
    """`markdown` with every marker replaced by its generator's output."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            known = ", ".join(sorted(GENERATORS))
            raise UnknownMarker(f"{where}: no generator {name!r} (known: {known})")
        return GENERATORS[name]().rstrip("\n")

    return MARKER.sub(one, markdown)
