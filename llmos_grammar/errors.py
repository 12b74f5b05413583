"""The error tree, source locations, and diagnostics with caret rendering."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Location:
    """A position in a source file; line and column are 1-based."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"

    def shifted(self, line_offset: int, column: int) -> Location:
        """A location `line_offset` lines below this one, at `column`."""
        return Location(self.file, self.line + line_offset, column)


def byte_location(data: bytes, offset: int, file: str) -> Location:
    """The line and column of byte `offset` in `data` (e.g. where UTF-8 decoding failed)."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return Location(file, line, column)


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec, policy or grammar."""

    severity: Severity
    message: str
    location: Location
    path: str = ""  # breadcrumb, e.g. "states.code.grammar"
    code: str = ""  # short identifier, e.g. "unknown-state"
    hint: str = ""  # what to do about it

    def format(self, source_line: str | None = None) -> str:
        where = f"{self.location}: {self.severity}"
        crumb = f" [{self.path}]" if self.path else ""
        text = f"{where}: {self.message}{crumb}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        if source_line is not None and self.location.column > 0:
            shown, column = _excerpt(source_line.rstrip(), self.location.column)
            text += f"\n  {shown}\n  {' ' * (column - 1)}^"
        return text

    def render(self, sources: SourceLines) -> str:
        """`format` with the source line under the message and a caret at the column."""
        return self.format(sources.line(self.location))


SOURCE_BYTES = 1 << 20  # a file is shown up to the size the loader accepts


class SourceLines:
    """The lines of the files diagnostics point into; each file is read (at most its first
    MiB) and split once, on demand: a file may have thousands of problems."""

    def __init__(self, texts: dict[str, str] | None = None) -> None:
        self._lines = {file: text.splitlines() for file, text in (texts or {}).items()}

    def line(self, where: Location) -> str | None:
        if where.line <= 0:
            return None  # an unlocated problem reads no file
        if where.file not in self._lines:
            try:
                with Path(where.file).open("rb") as handle:
                    head = handle.read(SOURCE_BYTES)
            except (OSError, ValueError):
                head = b""
            self._lines[where.file] = head.decode("utf-8", "replace").splitlines()
        lines = self._lines[where.file]
        return lines[where.line - 1] if where.line <= len(lines) else None


EXCERPT_CHARS = 100


def _excerpt(line: str, column: int) -> tuple[str, int]:
    """At most EXCERPT_CHARS of `line` around `column`, and the column within them."""
    if len(line) <= EXCERPT_CHARS:
        return line, column
    column = min(column, len(line) + 1)
    start = max(0, min(column - 1 - EXCERPT_CHARS // 2, len(line) - EXCERPT_CHARS))
    before = "..." if start else ""
    after = "..." if start + EXCERPT_CHARS < len(line) else ""
    return before + line[start : start + EXCERPT_CHARS] + after, column - start + len(before)


class LlmosError(Exception):
    """Root of every error llmos-grammar raises on purpose (the CLI exits 1 on it)."""

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        diagnostics: list[Diagnostic] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.diagnostics: list[Diagnostic] = list(diagnostics or [])

    def __str__(self) -> str:
        if self.location is not None:
            return f"{self.location}: {self.message}"
        return self.message


class SpecError(LlmosError):
    """A spec file is malformed or inconsistent."""


class PolicyError(LlmosError):
    """A policy file is malformed or inconsistent."""


class GrammarError(LlmosError):
    """A grammar, regex or JSON schema does not compile."""


class BackendError(GrammarError):
    """A constraint backend cannot enforce a grammar (unsupported construct, or over its bounds)."""


class ModelError(LlmosError):
    """A model could not be located or loaded."""


class DecodeError(LlmosError):
    """The constraint matcher rejected a step during decoding."""

    def __init__(self, message: str, state: str, step: int, token: int | None) -> None:
        super().__init__(f"{message} (state {state!r}, step {step}, token {token})")
        self.state = state
        self.step = step
        self.token = token


class ActionError(LlmosError):
    """An action could not be run (handler missing, policy refused, ...)."""


class TaskError(LlmosError):
    """A task file (JSONL) for llmos-eval is malformed."""


class SessionError(LlmosError):
    """A session cannot take an input (too long), or a saved session cannot be read."""


class TraceError(LlmosError):
    """A trace (JSON lines of events) cannot be read back."""


@dataclass
class Report:
    """All diagnostics collected while checking one or more files."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]
