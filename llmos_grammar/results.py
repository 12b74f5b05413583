"""The uniform result every action handler returns, and what runs actions by name."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

# The limit that stopped an action (`ActionResult.limit_hit`).
LimitName = Literal[
    "timeout", "cpu", "memory", "output", "file_size", "disk", "processes", "open_files"
]


@dataclass(frozen=True)
class ActionResult:
    """What an action did. `stdout`/`stderr` are already decoded and capped."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = 0
    signal: int | None = None
    timed_out: bool = False
    limit_hit: LimitName | None = None
    truncated: bool = False
    duration_s: float = 0.0
    cpu_s: float = 0.0
    peak_memory_mb: float = 0.0  # 0.0 where not measured (see sandbox.outcome)
    refused: str | None = None  # reason the action was not run at all
    rows: str = ""  # sqlite: the rendered table
    unenforced: tuple[str, ...] = ()  # limits this machine could not enforce
    limits: dict[str, object] = field(default_factory=dict)  # limits that applied (JSON values)

    @classmethod
    def failure(
        cls,
        stderr: str,
        *,
        timed_out: bool,
        started: float,
        limits: dict[str, object],
        unenforced: tuple[str, ...] = (),
    ) -> ActionResult:
        """A handler that failed (or ran out of time) before producing output.

        `started` is the handler's `time.monotonic()` at the start.
        """
        return cls(
            stderr=stderr,
            exit_code=None if timed_out else 1,
            timed_out=timed_out,
            limit_hit="timeout" if timed_out else None,
            duration_s=round(time.monotonic() - started, 6),
            unenforced=unenforced,
            limits=limits,
        )

    @property
    def ok(self) -> bool:
        return (
            self.refused is None
            and not self.timed_out
            and self.limit_hit is None
            and self.exit_code == 0
        )

    @property
    def status(self) -> str:
        if self.refused is not None:
            return f"refused: {self.refused}"
        if self.timed_out:
            return "timed out"
        if self.limit_hit is not None:
            return f"limit hit: {self.limit_hit}"
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        return f"exit {self.exit_code}"

    def template_fields(self) -> dict[str, object]:
        """Names an output template may use, e.g. "{stdout}{stderr}"."""
        fields = asdict(self)
        fields["status"] = self.status
        fields["ok"] = self.ok
        fields["output"] = self.stdout + self.stderr
        fields["error"] = "" if self.ok else (self.stderr or f"{self.status}\n")
        return fields

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["status"] = self.status
        data["ok"] = self.ok
        data["unenforced"] = list(self.unenforced)
        return data


class Runner(Protocol):
    """What runs a policy's actions by name (actions.ActionRunner, or a stand-in in tests)."""

    def run(self, action: str, text: str) -> ActionResult: ...

    def close(self) -> None:
        """End the runner's sessions and sandboxes (a runtime does when it closes or is
        interrupted)."""
        ...
