"""Per-step log lines (JSONL), the progress bar, and the reward history for the plot."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.libtypes.progress import ProgressBar, progress_bar
from llmos_grammar.train.rewards import RewardLog, RewardTally

if TYPE_CHECKING:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

    from llmos_grammar.train.rollout import Rollout

# TRL's metric names -> ours (TRL gathers them over all processes before logging)
METRICS = {
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "frac_reward_zero_std": "frac_groups_all_equal",
    "loss": "loss",
    "completions/mean_length": "chosen_tokens_mean",
    "completions/clipped_ratio": "clipped_ratio",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}


def _no_tally() -> RewardTally:
    return RewardTally(outcomes={}, reward_failures=[])


@dataclass(frozen=True)
class StepRecord:
    """One training step as logged: TRL's metrics under our names (`reward_mean`, `loss`,
    ..., and `reward_<term>` for each reward term), the tokens and seconds since the
    previous step, what the reward terms saw, and the decoding time within it."""

    step: int
    metrics: dict[str, float]
    tokens: float
    seconds: float
    tally: RewardTally = field(default_factory=_no_tally)
    rollout_seconds: float | None = None

    def metric(self, name: str) -> float:
        """A metric's value; 0 when TRL did not log it this step."""
        return self.metrics.get(name, 0.0)

    def terms(self) -> list[str]:
        """The metrics of single reward terms (`reward_correct`, ...)."""
        whole = ("reward_mean", "reward_std")
        return [k for k in self.metrics if k.startswith("reward_") and k not in whole]

    def to_json(self) -> dict[str, object]:
        """The log line: step, metrics, tokens, seconds, outcomes, failures, rollout time."""
        line: dict[str, object] = {"step": self.step, **self.metrics}
        line.update(tokens=self.tokens, seconds=self.seconds, **self.tally)
        if self.rollout_seconds is not None:
            line["rollout_seconds"] = self.rollout_seconds
        return line


def step_record(
    step: int,
    logs: Mapping[str, float],
    tokens: float,
    seconds: float,
    tally: RewardTally | None = None,
    rollout_seconds: float | None = None,
) -> StepRecord:
    """One step's record from TRL's logs: our names for its metrics, per-term rewards."""
    metrics = {name: logs[source] for source, name in METRICS.items() if source in logs}
    for key, value in logs.items():
        if key.startswith("rewards/") and key.endswith("/mean"):
            metrics[f"reward_{key.split('/')[1]}"] = value
    return StepRecord(
        step, metrics, tokens, round(seconds, 3), tally or _no_tally(), rollout_seconds
    )


class StepLog:
    """A transformers TrainerCallback (built by `callback()`) that writes `path` on process 0."""

    def __init__(
        self,
        path: Path,
        steps: int,
        rewards: RewardLog,
        progress: bool = True,
        rollout: Rollout | None = None,
    ) -> None:
        self.path = path
        self.rollout = rollout  # its `seconds` (decoding time so far) goes into each line
        self._rollout_s = 0.0
        self.steps = steps
        self.rewards = rewards
        self.progress = progress
        self.records: list[StepRecord] = []
        self._tokens_seen = 0.0
        self._last = time.perf_counter()
        self._bar: ProgressBar | None = None

    def callback(self) -> TrainerCallback:
        """The TrainerCallback that feeds this log."""
        from transformers import TrainerCallback

        log = self

        class _Callback(TrainerCallback):
            def on_train_begin(
                self,
                args: TrainingArguments,
                state: TrainerState,
                control: TrainerControl,
                **kw: object,
            ) -> None:
                log.begin(state.is_world_process_zero)

            def on_log(
                self,
                args: TrainingArguments,
                state: TrainerState,
                control: TrainerControl,
                logs: dict[str, float] | None = None,
                **kw: object,
            ) -> None:
                if state.is_world_process_zero and logs and "reward" in logs:
                    log.add(state.global_step, dict(logs), float(state.num_input_tokens_seen))

            def on_train_end(
                self,
                args: TrainingArguments,
                state: TrainerState,
                control: TrainerControl,
                **kw: object,
            ) -> None:
                log.end()

        return _Callback()

    def begin(self, main: bool) -> None:
        self.path.write_text("") if main else None
        self._bar = progress_bar(self.steps, "train", "step", self.progress and main)
        self._last = time.perf_counter()

    def add(self, step: int, logs: Mapping[str, float], tokens_seen: float) -> None:
        now = time.perf_counter()
        tokens = tokens_seen - self._tokens_seen
        self._tokens_seen = tokens_seen
        rollout_s = None
        if self.rollout is not None:
            rollout_s = round(self.rollout.seconds - self._rollout_s, 3)
            self._rollout_s = self.rollout.seconds
        tally = self.rewards.take()
        record = step_record(step, logs, tokens, now - self._last, tally, rollout_s)
        self._last = now
        self.records.append(record)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record.to_json()) + "\n")
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix_str(
                f"reward {record.metric('reward_mean'):.2f} loss {record.metric('loss'):.3f}"
            )

    def end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
