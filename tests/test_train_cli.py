"""`llmos-train` arguments, the step log, the plot, the paired bootstrap, `--adapter` errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from llmos_grammar.cli.main import main
from llmos_grammar.cli.train import add_arguments, plan, settings_of, shaping_terms
from llmos_grammar.train.heldout import paired_bootstrap
from llmos_grammar.train.rewards import RewardLog, RewardTerm
from llmos_grammar.train.steplog import StepLog, step_record

ROOT = Path(__file__).resolve().parent.parent
CALC = str(ROOT / "examples" / "calculator" / "spec.yaml")
TRAIN = str(ROOT / "examples" / "calculator" / "train_tasks.jsonl")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "0"], "--steps must be at least 1 (got 0)"),
        (["--group", "1"], "--group must be at least 2 (got 1)"),
        (["--batch", "6", "--group", "4"], "--batch (6) must be a multiple of --group (4)"),
        (["--lr", "0"], "--lr must be positive (got 0)"),
        (["--lora-r", "0"], "--lora-r must be at least 1 (got 0)"),
        (["--temperature", "0"], "--temperature must be positive for sampled groups (got 0)"),
        (["--eval", "nope.jsonl"], "--eval: no such file: nope.jsonl"),
        (["--shaping", "speed=1"], "--shaping speed=1: unknown term 'speed'; known: ran, stopped"),
        (["--shaping", "ran=lots"], "--shaping ran=lots: the weight must be a number"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", CALC, "--tasks", TRAIN, "--out", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"llmos-train: {message}\n"


def test_missing_spec_and_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "no.yaml", "--tasks", TRAIN, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "llmos-train: no such spec file: no.yaml\n"
    assert main(["train", CALC, "--tasks", "no.jsonl", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "llmos-train: --tasks: no such file: no.jsonl\n"


def parsed(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([CALC, "--tasks", TRAIN, "--out", "out", *extra])


def test_each_method_has_its_own_learning_rate_unless_told() -> None:
    terms = shaping_terms([])
    rft = settings_of(parsed(), terms)
    assert (rft.method, rft.rounds, rft.samples, rft.epochs) == ("rft", 3, 4, 2)
    assert rft.learning_rate == 2e-4 and "lr 0.0002" in plan(rft)
    grpo = settings_of(parsed("--method", "grpo"), terms)
    assert grpo.learning_rate == 1e-4 and "lr 0.0001" in plan(grpo)
    told = settings_of(parsed("--method", "grpo", "--lr", "3e-5"), terms)
    assert told.learning_rate == 3e-5 and "lr 3e-05" in plan(told)


def test_shaping_terms_default_weight() -> None:
    assert shaping_terms(["ran", "stopped=0.5"]) == (
        RewardTerm("correct", 1.0),
        RewardTerm("ran", 0.1),
        RewardTerm("stopped", 0.5),
    )


def test_paired_bootstrap() -> None:
    same = paired_bootstrap([True, False] * 10, [True, False] * 10)
    assert (same.before, same.after, same.low, same.high, same.gained, same.lost) == (
        0.5, 0.5, 0.0, 0.0, 0, 0,
    )  # fmt: skip
    better = paired_bootstrap([False] * 20, [True] * 5 + [False] * 15)
    assert better.after - better.before == 0.25 and better.gained == 5
    assert 0 < better.low < 0.25 < better.high <= 0.5
    assert better.to_json()["change_95"] == [better.low, better.high]
    with pytest.raises(ValueError, match="same, non-empty"):
        paired_bootstrap([True], [True, False])


def test_step_record_names_and_log_file(tmp_path: Path) -> None:
    logs = {
        "reward": 0.5,
        "reward_std": 0.25,
        "frac_reward_zero_std": 0.5,
        "loss": 0.01,
        "rewards/correct/mean": 0.5,
        "rewards/ran/mean": 1.0,
        "entropy": 2.0,
    }
    rewards = RewardLog()
    rewards.fail("ran", "task", "ValueError: x")
    log = StepLog(tmp_path / "log.jsonl", 2, rewards, progress=False)
    log.begin(main=True)
    log.add(1, logs, 300.0)
    log.add(2, logs, 500.0)
    log.end()
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["tokens"] for line in lines] == [300.0, 200.0]
    first = lines[0]
    assert first["reward_mean"] == 0.5 and first["frac_groups_all_equal"] == 0.5
    assert first["reward_correct"] == 0.5 and first["reward_ran"] == 1.0
    assert first["reward_failures"] == [{"term": "ran", "task": "task", "reason": "ValueError: x"}]
    assert lines[1]["reward_failures"] == [] and "entropy" not in first
    assert log.records[0].to_json() == first and log.records[1].metric("entropy") == 0.0
    assert step_record(3, {}, 0.0, 1.0004).to_json()["seconds"] == 1.0


def test_reward_plot_is_a_png(tmp_path: Path) -> None:
    from llmos_grammar.train.plot import plot_rewards

    records = [
        step_record(s, {"reward": 0.1 * s, "reward_std": 0.1, "rewards/correct/mean": 0.1 * s,
                        "frac_reward_zero_std": 0.5}, 0.0, 1.0)
        for s in range(1, 6)
    ]  # fmt: skip
    assert records[0].terms() == ["reward_correct"]
    out = tmp_path / "rewards.png"
    plot_rewards(records, str(out), "test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command", ["run", "eval"])
def test_adapter_folder_errors(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rest = ["What is 2 + 2?"] if command == "run" else ["--tasks", TRAIN, "--limit", "1"]
    assert main([command, CALC, *rest, "--adapter", str(tmp_path / "none")]) == 1
    assert "--adapter: no such folder" in capsys.readouterr().err
    assert main([command, CALC, *rest, "--adapter", str(tmp_path)]) == 1
    assert f"--adapter: {tmp_path} has no adapter_config.json" in capsys.readouterr().err
