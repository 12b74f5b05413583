"""The exit status table, read from `llmos_grammar/cli/exits.py`: each constant and the
comment beside it."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from llmos_docs.table import code, table

EXITS = Path(__file__).resolve().parents[3] / "llmos_grammar" / "cli" / "exits.py"


def statuses() -> list[tuple[str, int, str]]:
    """(name, value, meaning) of every `EXIT_* = N  # meaning` line."""
    from llmos_grammar.cli import exits

    found = []
    tokens = tokenize.generate_tokens(io.StringIO(EXITS.read_text(encoding="utf-8")).readline)
    line: list[tokenize.TokenInfo] = []
    for token in tokens:
        if token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            line = []
            continue
        line.append(token)
        if token.type == tokenize.COMMENT and line[0].string.startswith("EXIT_"):
            name = line[0].string
            found.append((name, int(getattr(exits, name)), token.string.lstrip("# ").strip()))
    return found


def render() -> str:
    rows = [[code(str(value)), code(name), meaning] for name, value, meaning in statuses()]
    return table(["status", "constant", "meaning"], rows)
