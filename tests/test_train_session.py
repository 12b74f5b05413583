"""A whole training run on a tiny random model: its files, and the adapter's record read back."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("peft", reason="training tests need the [train] extra (trl, peft)")

from llmos_grammar.cli.adapter import adapter_line  # noqa: E402
from llmos_grammar.eval import load_tasks  # noqa: E402
from llmos_grammar.models import wrap  # noqa: E402
from llmos_grammar.train.adapter import describe_adapter, file_digest, train_info  # noqa: E402
from llmos_grammar.train.session import run_training  # noqa: E402
from llmos_grammar.train.settings import TrainSettings  # noqa: E402
from tests.test_runtime_batch import TASKS, Calculator, steer, varied_model  # noqa: E402
from tests.test_runtime_helpers import tokenizer  # noqa: E402
from tests.test_train_rft import machine  # noqa: E402


@pytest.mark.parametrize("method", ["rft", "grpo"])
def test_a_run_writes_the_adapter_its_record_log_and_evaluations(
    method: str, tmp_path: Path
) -> None:
    tasks_file = tmp_path / "tasks.jsonl"
    tasks_file.write_text("".join(json.dumps({"task": t, "answer": 4}) + "\n" for t in TASKS[:2]))
    tasks = load_tasks(str(tasks_file))
    lm = wrap(copy.deepcopy(varied_model().model), tokenizer(), name="tiny")
    settings = TrainSettings(method=method, rounds=1, samples=2, steps=1, group=2, batch=4,  # type: ignore[arg-type]
                             lr=1e-2, lora_r=4, rows=4, seed=7)  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    m = replace(machine(), cache_key="spec-key-1")
    seen = []
    outcome = run_training(m, lm, tasks, settings, out, eval_sets=[tasks], progress=False,
                           runner=Calculator(), on_record=seen.append,
                           logits_processors=[steer])  # fmt: skip
    assert len(outcome.records) == 1 and seen == outcome.records and not outcome.interrupted
    for name in ("adapter_config.json", "adapter_model.safetensors", "llmos_train.json",
                 "train_log.jsonl", "progress.png", "eval_tasks_before.json",
                 "eval_tasks_after.json"):  # fmt: skip
        assert (out / name).is_file(), name
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log == [outcome.records[0].to_json()]
    unit = "round" if method == "rft" else "step"
    assert log[0][unit] == 1 and log[0]["runs"] == 4 and log[0]["method"] == method
    if method == "grpo":
        assert 0.0 <= log[0]["groups_with_signal"] <= 1.0
    [held] = outcome.held_out
    assert held.paired is not None and held.paired.n == 2
    info = train_info(out)
    assert info["method"] == method and info[unit + "s"] == 1 and info["seed"] == 7
    assert info["spec_key"] == m.cache_key and info["model"] == m.model.name
    assert info["tasks_file"] == str(tasks_file) and info["tasks_hash"] == file_digest(tasks_file)
    assert info["eval"] == [held.paired.to_json()]
    line = describe_adapter(info, m.cache_key)
    assert f"trained by {method}, 1 {unit}(s), seed 7, on {tasks_file}" in line
    assert info["tasks_hash"][:19] in line and m.model.name in line and "not the spec" not in line
    assert "not the spec it was trained with" in describe_adapter(info, "another-key")
    assert adapter_line(str(out), m.cache_key) == f"adapter {out}: {line}"


def test_an_adapter_without_a_record_says_so(tmp_path: Path) -> None:
    assert train_info(tmp_path) == {}
    (tmp_path / "llmos_train.json").write_text("not json")
    assert train_info(tmp_path) == {}
    assert describe_adapter({}) == "no training record (llmos_train.json) next to the adapter"
