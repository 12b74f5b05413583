"""The shell's input line: readline editing, a history file under the XDG state folder, bad input.

readline (the standard library's) gives line editing and history with no new
dependency and works on any terminal, pseudo-terminals in tests included;
prompt_toolkit would add a package for features the shell does not use.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

MAX_INPUT_BYTES = 32 * 1024  # a longer paste is refused, not sent
HISTORY_LINES = 1000


def history_path() -> Path:
    """$XDG_STATE_HOME/llmos/history (default ~/.local/state/llmos/history)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "llmos" / "history"


class LineReader:
    """`read(prompt)` a line with editing and history; the history is saved on `close`."""

    def __init__(self, history: Path | None) -> None:
        self.history = history
        self.readline: ModuleType | None = None
        try:
            import readline
        except ImportError:  # no readline on this platform: plain lines
            return
        self.readline = readline
        readline.set_history_length(HISTORY_LINES)
        if history is not None and history.is_file():
            with contextlib.suppress(OSError):
                readline.read_history_file(str(history))
        reconfigure = getattr(sys.stdin, "reconfigure", None)
        if reconfigure is not None:  # bytes that are not UTF-8 arrive as surrogates
            reconfigure(errors="surrogateescape")

    def read(self, prompt: str) -> str:
        """One line (EOFError at Ctrl-D, KeyboardInterrupt at Ctrl-C)."""
        return input(prompt)

    def close(self) -> None:
        if self.readline is None or self.history is None:
            return
        try:
            self.history.parent.mkdir(parents=True, exist_ok=True)
            self.readline.write_history_file(str(self.history))
        except OSError as exc:
            print(f"llmos shell: history not saved: {exc}", file=sys.stderr)


@dataclass(frozen=True)
class Line:
    """A line as the session gets it, and what was wrong with it (empty when nothing)."""

    text: str
    problem: str = ""
    refused: bool = False


def clean(raw: str) -> Line:
    """Replace bytes that are not UTF-8 (and say so); refuse a paste over MAX_INPUT_BYTES."""
    data = raw.encode("utf-8", "surrogateescape")
    text = data.decode("utf-8", "replace")
    problem = ""
    bad = sum(1 for ch in raw if "\udc80" <= ch <= "\udcff")
    if bad:
        problem = f"{bad} byte(s) of the input were not UTF-8; replaced with U+FFFD"
    if len(data) > MAX_INPUT_BYTES:
        size = f"{len(data) / 1024:.0f} KB"
        message = f"input of {size} refused: a turn holds at most {MAX_INPUT_BYTES // 1024} KB"
        return Line(text, message, refused=True)
    return Line(text, problem)
