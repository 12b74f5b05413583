"""Markdown tables whose cells may hold any text."""

from __future__ import annotations

from collections.abc import Sequence


def cell(text: str) -> str:
    """One table cell: pipes escaped, line breaks as spaces."""
    return " ".join(text.replace("|", "\\|").split())


def code(text: str) -> str:
    """Inline code that may itself contain backticks."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
