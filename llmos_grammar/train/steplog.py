"""Per-step log lines (JSONL), the progress bar, and the reward history for the plot."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from llmos_grammar.train.rewards import RewardLog

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


def step_record(
    step: int, logs: dict[str, Any], tokens: float, seconds: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """One JSON line: our names for TRL's metrics, per-term rewards, tokens, seconds."""
    record: dict[str, Any] = {"step": step}
    for source, name in METRICS.items():
        if source in logs:
            record[name] = logs[source]
    for key, value in logs.items():
        if key.startswith("rewards/") and key.endswith("/mean"):
            record[f"reward_{key.split('/')[1]}"] = value
    record["tokens"] = tokens
    record["seconds"] = round(seconds, 3)
    record.update(extra)
    return record


class StepLog:
    """A transformers TrainerCallback (built by `callback()`) that writes `path` on process 0."""

    def __init__(
        self,
        path: Path,
        steps: int,
        rewards: RewardLog,
        progress: bool = True,
        rollout: Any = None,
    ) -> None:
        self.path = path
        self.rollout = rollout  # its `seconds` (decoding time so far) goes into each line
        self._rollout_s = 0.0
        self.steps = steps
        self.rewards = rewards
        self.progress = progress
        self.records: list[dict[str, Any]] = []
        self._tokens_seen = 0.0
        self._last = time.perf_counter()
        self._bar: Any = None

    def callback(self) -> Any:
        """The TrainerCallback that feeds this log."""
        from transformers import TrainerCallback

        log = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                log.begin(state.is_world_process_zero)

            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any
            ) -> None:
                if state.is_world_process_zero and logs and "reward" in logs:
                    log.add(int(state.global_step), dict(logs), float(state.num_input_tokens_seen))

            def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                log.end()

        return _Callback()

    def begin(self, main: bool) -> None:
        from tqdm import tqdm

        self.path.write_text("") if main else None
        self._bar = tqdm(
            total=self.steps,
            desc="train",
            unit="step",
            file=sys.stderr,
            disable=not (self.progress and main),
        )
        self._last = time.perf_counter()

    def add(self, step: int, logs: dict[str, Any], tokens_seen: float) -> None:
        now = time.perf_counter()
        tokens = tokens_seen - self._tokens_seen
        self._tokens_seen = tokens_seen
        extra = self.rewards.take()
        if self.rollout is not None:
            extra["rollout_seconds"] = round(self.rollout.seconds - self._rollout_s, 3)
            self._rollout_s = self.rollout.seconds
        record = step_record(step, logs, tokens, now - self._last, extra)
        self._last = now
        self.records.append(record)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix_str(
                f"reward {record.get('reward_mean', 0.0):.2f} loss {record.get('loss', 0.0):.3f}"
            )

    def end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
