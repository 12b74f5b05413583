"""GRPO on the lean training pass: advantages, the tasks of a step, one step on a tiny model."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from llmos_grammar.cli.main import main
from llmos_grammar.train.grpo import EPSILON, advantages, step_tasks
from tests.test_train_cli import CALC, TRAIN


def test_advantages_are_normalized_within_each_group() -> None:
    rewards = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    out = advantages(rewards, 4)
    std = statistics.stdev([1.0, 0.0, 0.0, 0.0])
    assert out[:4] == pytest.approx([(1 - 0.25) / (std + EPSILON)] + [-0.25 / (std + EPSILON)] * 3)
    assert out[4:] == [0.0] * 4  # all equal: no signal
    assert sum(out[:4]) == pytest.approx(0.0)


def test_step_tasks_cover_every_task_before_repeating() -> None:
    first = step_tasks(10, 4, 1, seed=0) + step_tasks(10, 4, 2, seed=0)
    third = step_tasks(10, 4, 3, seed=0)
    assert len(set(first)) == 8 and len(third) == 4
    assert set(first) | set(third[:2]) == set(range(10))  # the first pass ends inside step 3
    assert step_tasks(10, 4, 1, seed=0) == step_tasks(10, 4, 1, seed=0)
    assert step_tasks(10, 4, 1, seed=0) != step_tasks(10, 4, 1, seed=1)
    assert len(step_tasks(3, 8, 1, seed=0)) == 8  # more tasks a step than there are


def test_a_grpo_step_learns_only_from_groups_with_signal() -> None:
    pytest.importorskip("peft", reason="training tests need the [train] extra (trl, peft)")
    import torch

    from llmos_grammar.train.grpo import grpo_step
    from llmos_grammar.train.settings import TrainSettings
    from tests.test_train_rft import context, lora

    settings = TrainSettings(
        method="grpo", steps=1, group=4, batch=8, lr=5e-2, lora_r=4, rows=8, seed=1
    )
    ctx = context(settings)
    before = lora(ctx.policy)
    record = grpo_step(ctx, 1)
    runs = record.sampled.runs
    assert len(runs) == 8 and record.optimizer_steps == 1
    groups = [runs[:4], runs[4:]]
    assert all(len({r.task_index for r in g}) == 1 for g in groups)
    with_signal = [g for g in groups if len({r.solved for r in g}) == 2]
    assert with_signal  # the test needs a group whose runs differ
    assert record.signal == len(with_signal) / 2
    assert record.kept == 4 * len(with_signal)
    assert record.extra["reward_mean"] == sum(r.solved for r in runs) / 8
    changed = any(not torch.equal(before[n], p) for n, p in lora(ctx.policy).items())
    assert changed == bool(with_signal)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rounds", "0"], "--rounds must be at least 1 (got 0)"),
        (["--samples", "0"], "--samples must be at least 1 (got 0)"),
        (["--rows", "0"], "--rows must be at least 1 (got 0)"),
        (["--method", "grpo", "--batch", "12", "--group", "8"],
         "--batch (12) must be a multiple of --group (8)"),
    ],
)  # fmt: skip
def test_bad_new_arguments_are_one_line_usage_errors(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", CALC, "--tasks", TRAIN, "--out", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"llmos-train: {message}\n"


def test_init_adapter_must_be_an_adapter_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", CALC, "--tasks", TRAIN, "--out", str(tmp_path / "o"), "--method", "grpo",
            "--init-adapter", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert (
        capsys.readouterr().err
        == f"llmos-train: --init-adapter: {tmp_path} has no adapter_config.json\n"
    )
