"""One line per RFT round or GRPO step: what was sampled, solved, kept and learned, and how long."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmos_grammar.train.lean_pass import PassStats
from llmos_grammar.train.sampler import Sampled

FAILED = ("model error", "scoring error")  # outcomes whose rows carry a reason worth logging


@dataclass(frozen=True)
class Draw:
    """What one round or step sampled: the runs (scored) and the seconds it took."""

    runs: tuple[Sampled, ...]
    seconds: float

    @property
    def solved(self) -> int:
        return sum(s.solved for s in self.runs)

    @property
    def tasks(self) -> int:
        return len({s.task_index for s in self.runs})

    @property
    def tasks_solved(self) -> int:
        return len({s.task_index for s in self.runs if s.solved})

    def outcomes(self) -> dict[str, int]:
        return dict(Counter(s.outcome for s in self.runs))

    def failures(self) -> list[dict[str, object]]:
        return [s.to_json() for s in self.runs if s.outcome in FAILED]


@dataclass(frozen=True)
class Record:
    """A round (rft) or step (grpo): sampling, what was kept, and the training pass."""

    method: str
    index: int  # from 1
    sampled: Draw
    kept: int  # examples trained on
    fit: PassStats
    optimizer_steps: int
    signal: float | None = None  # grpo: the fraction of groups whose rewards differ
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def solved_rate(self) -> float:
        runs = len(self.sampled.runs)
        return self.sampled.solved / runs if runs else 0.0

    def to_json(self) -> dict[str, object]:
        s = self.sampled
        line: dict[str, object] = {
            "method": self.method,
            "round" if self.method == "rft" else "step": self.index,
            "runs": len(s.runs),
            "solved": s.solved,
            "solved_rate": round(self.solved_rate, 4),
            "tasks": s.tasks,
            "tasks_solved": s.tasks_solved,
            "kept": self.kept,
            "loss": round(self.fit.loss, 6),
            "nll": round(self.fit.nll, 6),
            "chosen_tokens": self.fit.chosen,
            "fed_tokens": self.fit.fed,
            "prefix_tokens": self.fit.prefix,
            "optimizer_steps": self.optimizer_steps,
            "sample_seconds": round(s.seconds, 2),
            "train_seconds": round(self.fit.seconds, 2),
            "outcomes": s.outcomes(),
            "failures": s.failures(),
        }
        if self.signal is not None:
            line["groups_with_signal"] = round(self.signal, 4)
        line.update(self.extra)
        return line

    def line(self) -> str:
        """The one line printed after each round or step."""
        s = self.sampled
        name = "round" if self.method == "rft" else "step"
        signal = "" if self.signal is None else f", groups with signal {self.signal:.0%}"
        failed = sum(1 for r in s.runs if r.outcome in FAILED)
        return (
            f"{name} {self.index}: solved {s.solved}/{len(s.runs)} runs ({self.solved_rate:.1%}), "
            f"{s.tasks_solved}/{s.tasks} tasks{signal}; kept {self.kept}; "
            f"loss {self.fit.loss:.4f} (nll {self.fit.nll:.3f}/token); "
            f"sampling {s.seconds:.0f} s, training {self.fit.seconds:.0f} s"
            + (f"; {failed} failed run(s), see the log" if failed else "")
        )


def write_log(path: Path, records: Sequence[Record]) -> None:
    """The JSONL log, one record a line (rewritten whole after each round or step)."""
    text = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records)
    path.write_text(text)
