"""Training (RLSF): the model improves on its own executed runs, rewarded by their results.

    from llmos_grammar.train.session import run_training
    from llmos_grammar.train.settings import TrainSettings
    outcome = run_training(machine, lm, tasks, TrainSettings(method="rft", rounds=2), out)

Two methods over one training pass (`lean_pass`: the shared prompt fed once,
log-probabilities only at the tokens the model chose): rejection-sampling
fine-tuning (`rft`) and GRPO (`grpo`). `pipeline`, `rollout` and `steplog` are
the TRL GRPOTrainer path the project started with, kept as the baseline that
`benchmarks/bench_train.py` measures against. `llmos-train`
(llmos_grammar.cli.train) is the command line; torch, peft and trl are imported
inside the functions that need them.
"""

from __future__ import annotations

from llmos_grammar.train.rewards import RewardLog, RewardTerm, reward_functions
from llmos_grammar.train.rollout import Rollout, rollout_rows

__all__ = ["RewardLog", "RewardTerm", "Rollout", "reward_functions", "rollout_rows"]
