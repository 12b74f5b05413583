"""The GRPO glue on a tiny random model: the rollout_func contract, one step, masked gradients."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("trl", reason="training tests need the [train] extra (trl, peft)")
pytest.importorskip("peft", reason="training tests need the [train] extra (trl, peft)")

import torch  # noqa: E402

from llmos_grammar.errors import Location  # noqa: E402
from llmos_grammar.eval import Task  # noqa: E402
from llmos_grammar.models import wrap  # noqa: E402
from llmos_grammar.results import ActionResult  # noqa: E402
from llmos_grammar.train import Rollout, rollout_rows  # noqa: E402
from llmos_grammar.train.pipeline import TrainConfig, build_trainer  # noqa: E402
from llmos_grammar.train.rollout import RESULT_KEY  # noqa: E402
from tests.test_runtime_batch import TASKS, Calculator, calc_machine, steer, varied_model  # noqa: E402
from tests.test_runtime_helpers import FakeRunner, Script, tiny_model, tokenizer  # noqa: E402

WHERE = Location("<train>", 1)


def fresh_lm() -> Any:
    """A private copy of the varied tiny model (training changes its weights)."""
    return wrap(copy.deepcopy(varied_model().model), tokenizer(), name="tiny")


def fake_trainer(model: Any, step: int = 0) -> Any:
    return SimpleNamespace(
        model=model,
        processing_class=tokenizer(),
        state=SimpleNamespace(global_step=step),
        accelerator=SimpleNamespace(process_index=0),
    )


def test_rollout_returns_one_row_per_prompt_ending_with_eos() -> None:
    prompts = [task for task in TASKS[:3] for _ in range(2)]  # TRL repeats each prompt G times
    rollout = Rollout(calc_machine(), batch=4, runner=Calculator(), logits_processors=[steer])
    model = fresh_lm().model.train()
    out = rollout(prompts, fake_trainer(model))
    rollout.close()
    assert model.training  # the training mode is back after decoding
    n = len(prompts)
    assert out["logprobs"] is None
    assert [len(out[k]) for k in ("prompt_ids", "completion_ids", "env_mask", RESULT_KEY)] == [
        n
    ] * 4
    eos = tokenizer().eos_token_id
    for prompt, ids, mask, result, task in zip(
        out["prompt_ids"],
        out["completion_ids"],
        out["env_mask"],
        out[RESULT_KEY],
        prompts,
        strict=True,
    ):
        assert len(ids) == len(mask) and set(mask) <= {0, 1} and 1 in mask
        assert ids[-1] == eos
        assert task in tokenizer().decode(prompt)
        assert list(result.completion_ids) == ids[: len(result.completion_ids)]
    # the copies of a prompt are sampled with their own seeds
    assert len({tuple(ids) for ids in out["completion_ids"]}) > n // 2


def test_env_mask_is_zero_exactly_on_injected_and_forced_tokens() -> None:
    from tests.test_runtime import calc_machine as scripted_machine

    pieces = ["Sure", " [", "CO", "4", "2", ")", " Done", "."]
    rollout = Rollout(
        scripted_machine(),  # type: ignore[arg-type]
        runner=FakeRunner(ActionResult(stdout="42\n")),
        logits_processors=[Script(pieces)],
    )
    out = rollout(["task"], fake_trainer(copy.deepcopy(tiny_model().model)))
    ids, mask = out["completion_ids"][0], out["env_mask"][0]
    tok = tokenizer()
    chosen = [t for t, m in zip(ids, mask, strict=True) if m]
    other = [t for t, m in zip(ids, mask, strict=True) if not m]
    sampled = [
        tok.encode(p, add_special_tokens=False)[0] for p in ["Sure", "4", "2", ")", " Done", "."]
    ]
    assert chosen == sampled + [tok.eos_token_id]
    # what the model did not choose: the trigger (re-tokenized with its forced rest), the
    # state's open text, "print(" from the grammar, the close, and the action's output
    assert tok.decode(other) == " [CODE]\nprint(\n[/CODE]\n[OUTPUT]\n42\n[/OUTPUT]\n"
    assert (
        tok.decode(ids)
        == "Sure [CODE]\nprint(42)\n[/CODE]\n[OUTPUT]\n42\n[/OUTPUT]\n Done." + tok.eos_token
    )


def test_a_run_cut_by_a_budget_gets_a_masked_eos() -> None:
    from dataclasses import replace

    from tests.fake_batch import calc_result

    eos = tokenizer().eos_token_id
    cut = replace(
        calc_result("x", " 1", stop="max_tokens"),
        prompt_ids=(5, 6),
        completion_ids=(7, 8),
        chosen=(1, 0),
    )
    done = replace(cut, completion_ids=(7, eos), chosen=(1, 1))
    rows = rollout_rows([cut, done], eos, frozenset({eos}))
    assert rows["completion_ids"] == [[7, 8, eos], [7, eos]]
    assert rows["env_mask"] == [[1, 0, 0], [1, 1]]
    assert rows["prompt_ids"] == [[5, 6], [5, 6]]
    with pytest.raises(ValueError, match="2 completion ids but 1 mask"):
        rollout_rows([replace(cut, chosen=(1,))], eos, frozenset({eos}))


def tasks() -> list[Task]:
    return [Task(t, "answer", WHERE, answer=4) for t in TASKS[:4]]


def alternating(completions: list[Any], **_: Any) -> list[float]:
    """Rewards 0, 1, 0, 1, ...: every group of two has a better and a worse sample."""
    return [float(i % 2) for i in range(len(completions))]


def trainer_for(tmp_path: Path, lr: float = 1e-2) -> Any:
    rollout = Rollout(calc_machine(), batch=4, runner=Calculator(), logits_processors=[steer])
    config = TrainConfig(steps=1, group=2, batch=4, lr=lr, lora_r=4)
    return build_trainer(fresh_lm(), tasks(), config, tmp_path, rollout, [alternating])


def lora(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_one_grpo_step_changes_the_adapter_weights(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path)
    before = lora(trainer.model)
    assert before and all(
        "lora_" in n for n, p in trainer.model.named_parameters() if p.requires_grad
    )
    trainer.train()
    after = lora(trainer.model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    # B starts at zero, so A gets no gradient on the first step; every B moves
    assert changed == {n for n in before if "lora_B" in n} and changed
    assert trainer.state.log_history[0]["frac_reward_zero_std"] == 0.0
    trainer.save_model(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


def test_masked_tokens_get_no_gradient(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path)
    trainer.model.train()
    batch = [
        {"prompt": t.text, "task_index": i} for i, t in enumerate(tasks()[:2]) for _ in range(2)
    ]
    inputs = trainer._generate_and_score_completions(batch)
    grads: list[torch.Tensor] = []

    def keep(module: Any, args: Any, output: torch.Tensor) -> None:
        output.register_hook(grads.append)

    trainer.current_gradient_accumulation_steps = 1  # set by the training loop otherwise
    # TRL multiplies the final hidden states by lm_head.weight itself, so the gradient is
    # taken at the final norm's output: position t feeds only the logits of position t
    norm = trainer.model.get_base_model().model.norm
    handle = norm.register_forward_hook(keep)
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    handle.remove()
    width = inputs["completion_ids"].shape[1]
    # position t predicts token t + 1: the completion's are the last width + 1 but one
    per_token = grads[0][:, -width - 1 : -1].abs().sum(-1)
    mask = inputs["completion_mask"] * inputs["tool_mask"]
    assert (mask == 0).any() and (mask == 1).any()
    assert torch.all(per_token[mask == 0] == 0)
    assert torch.all(per_token[mask == 1] > 0)
