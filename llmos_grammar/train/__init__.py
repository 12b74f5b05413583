"""Training (RLSF): GRPO through TRL on the runtime's own rollouts, rewards from execution.

    from llmos_grammar.train import Rollout, reward_functions
    rollout = Rollout(machine, batch=8, temperature=1.0, seed=0)
    # GRPOTrainer(..., rollout_func=rollout, reward_funcs=reward_functions(...))

`llmos-train` (llmos_grammar.cli.train) is the command line over these; the
heavy parts (torch, trl, peft) are imported inside the functions that need them.
"""

from __future__ import annotations

from llmos_grammar.train.rewards import RewardLog, RewardTerm, reward_functions
from llmos_grammar.train.rollout import Rollout, rollout_rows

__all__ = ["RewardLog", "RewardTerm", "Rollout", "reward_functions", "rollout_rows"]
