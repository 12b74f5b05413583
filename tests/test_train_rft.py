"""RFT on a tiny random model: what is kept, the loss mask, the adapter moving, the next round."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft", reason="training tests need the [train] extra (trl, peft)")

import torch  # noqa: E402

from llmos_grammar.errors import Location  # noqa: E402
from llmos_grammar.eval import Task  # noqa: E402
from llmos_grammar.models import wrap  # noqa: E402
from llmos_grammar.train.examples import chosen_text, example  # noqa: E402
from llmos_grammar.train.lean_pass import backward_pass, chosen_token_logprobs  # noqa: E402
from llmos_grammar.train.loop import Context, draw, make_optimizer  # noqa: E402
from llmos_grammar.train.policy import Policy  # noqa: E402
from llmos_grammar.train.rft import kept_examples, rft_round  # noqa: E402
from llmos_grammar.train.settings import TrainSettings  # noqa: E402
from tests.test_runtime_batch import TASKS, Calculator, calc_machine, steer, varied_model  # noqa: E402
from tests.test_runtime_helpers import tokenizer  # noqa: E402
from tests.test_train_sampler import EvenScorer, program_number  # noqa: E402

WHERE = Location("<train>", 1)


def tasks() -> list[Task]:
    return [Task(t, "answer", WHERE, answer=0) for t in TASKS[:4]]


SYSTEM = "You are a calculator. Write a program in [CODE] that prints the answer, then say it."


def machine() -> Any:
    """The batch tests' calculator with a system prompt long enough to be shared."""
    return replace(calc_machine(), prompt=replace(calc_machine().prompt, system=SYSTEM))


def context(settings: TrainSettings | None = None, runner: Any = None) -> Context:
    lm = wrap(copy.deepcopy(varied_model().model), tokenizer(), name="tiny")
    settings = settings or TrainSettings(rounds=2, samples=3, lr=5e-2, lora_r=4, rows=8, seed=0)
    policy = Policy(lm, settings.lora_r)
    return Context(
        machine(), policy, EvenScorer(), runner or Calculator(), tasks(), settings,  # type: ignore[arg-type]
        make_optimizer(policy, settings.learning_rate), progress=False, logits_processors=[steer],
    )  # fmt: skip


def lora(policy: Policy) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_" in n}


def test_only_distinct_solved_runs_are_kept() -> None:
    ctx = context()
    drawn = draw(ctx, range(len(ctx.tasks)), 3, 1, "test")
    runs = drawn.runs
    assert len(runs) == 12 and [(r.task_index, r.sample) for r in runs][:4] == [
        (0, 0), (0, 1), (0, 2), (1, 0),
    ]  # fmt: skip
    solved = [r for r in runs if r.solved]
    assert solved and len(solved) < len(runs)  # the test needs both kinds
    assert all(r.result is not None and program_number(r.result) % 2 == 0 for r in solved)
    kept = kept_examples(ctx, drawn)
    by_text = {(r.task_index, chosen_text(r.result, tokenizer())) for r in solved if r.result}
    assert len(kept) == len(by_text) <= len(solved)
    solved_ids = {r.result.completion_ids for r in solved if r.result}
    for ex in kept:
        assert ex.completion_ids[: len(ex.completion_ids) - 1] in solved_ids or (
            ex.completion_ids in solved_ids
        )
        assert ex.weight == 1.0
    unsolved = {r.result.completion_ids for r in runs if not r.solved and r.result}
    assert not any(ex.completion_ids in unsolved for ex in kept)


def test_an_example_masks_exactly_the_chosen_tokens() -> None:
    ctx = context()
    drawn = draw(ctx, [1], 1, 1, "test")
    result = drawn.runs[0].result
    assert result is not None
    eos = tokenizer().eos_token_id
    ex = example(result, eos, frozenset({eos}))
    n = len(result.completion_ids)
    assert ex.prompt_ids == result.prompt_ids and ex.completion_ids[:n] == result.completion_ids
    assert ex.mask[:n] == result.chosen and set(ex.mask[n:]) <= {0}
    assert 0 in ex.mask and 1 in ex.mask  # forced and injected text, and the model's own


def reference_loss(model: Any, examples: list[Any], mask_of: Any) -> torch.Tensor:
    """-sum log p over the positions `mask_of(example)` marks, from one plain full forward
    per example with full-vocabulary logits, over the marked tokens' count."""
    total = torch.zeros(())
    count = 0
    for ex in examples:
        logp = torch.log_softmax(model(torch.tensor([ex.ids])).logits[0].float(), -1)
        start = len(ex.prompt_ids) - 1
        for j, (token, keep) in enumerate(zip(ex.completion_ids, mask_of(ex), strict=True)):
            if keep:
                total = total - ex.weight * logp[start + j, token]
                count += 1
    return total / count


def grads(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_the_training_pass_is_the_loss_on_chosen_tokens_only() -> None:
    ctx = context()
    drawn = draw(ctx, range(4), 2, 1, "test")
    eos = tokenizer().eos_token_id
    examples = [example(r.result, eos, frozenset({eos}), weight=0.5 + i)
                for i, r in enumerate(drawn.runs) if r.result]  # fmt: skip
    model = ctx.policy.model
    with torch.no_grad():  # a non-zero adapter, so that every LoRA matrix gets a gradient
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    # tiny micro-batches: the shared prompt's gradient must add up over several of them
    stats = backward_pass(model, examples, tokens=40)
    ours = grads(model)
    assert stats.prefix > 0 and stats.micro_batches > 1
    assert stats.chosen == sum(sum(e.mask) for e in examples)
    ctx.optimizer.zero_grad(set_to_none=True)
    loss = reference_loss(model, examples, lambda ex: ex.mask)
    loss.backward()
    reference = grads(model)
    assert ours.keys() == reference.keys() and ours
    assert stats.loss == pytest.approx(float(loss.detach()), rel=1e-4)
    for name in ours:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-3, atol=1e-5)
    ctx.optimizer.zero_grad(set_to_none=True)
    # the same loss over every completion token (forced and injected text too) is another one
    everything = reference_loss(model, examples, lambda ex: [1] * len(ex.mask))
    assert abs(float(everything.detach()) - stats.loss) > 1e-3
    logps = chosen_token_logprobs(model, examples)
    assert [len(lp) for lp in logps] == [e.chosen for e in examples]


def test_a_round_changes_the_adapter_and_the_next_round_samples_from_it() -> None:
    seen: list[tuple[str, torch.Tensor]] = []

    def spy(state: str, text: str, logits: Any) -> None:
        if state == "talk" and text == "":
            seen.append((state, logits.clone()))

    ctx = context()
    ctx.logits_processors = [spy, steer]
    before = lora(ctx.policy)
    base = {n: p.detach().clone() for n, p in ctx.policy.model.named_parameters()
            if "base_layer" in n}  # fmt: skip
    first = rft_round(ctx, 1)
    after = lora(ctx.policy)
    assert first.kept > 0 and first.optimizer_steps >= 1 and first.fit.chosen > 0
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and {n for n in before if "lora_B" in n} <= changed
    # sampling merged the adapter in and took it out again: the base weights are as they were
    for name, weight in ctx.policy.model.named_parameters():
        if name in base:
            torch.testing.assert_close(weight.detach(), base[name], rtol=0, atol=1e-6)
    round_one = [logits for _, logits in seen]
    seen.clear()
    run = first.sampled.runs[0]
    assert run.result is not None and run.task_index == 0
    expected = first_step_logits(ctx, run.result.prompt_ids)  # the adapter after round 1
    second = rft_round(ctx, 2)
    round_two = [logits for _, logits in seen]
    assert second.index == 2 and len(round_one) == len(round_two) == 12
    # the same first step of the same prompts, other logits: the changed model sampled them
    assert not torch.allclose(round_one[0], round_two[0])
    finite = torch.isfinite(round_two[0])
    torch.testing.assert_close(round_two[0][finite], expected[finite], rtol=1e-3, atol=1e-3)


def first_step_logits(ctx: Context, prompt_ids: tuple[int, ...]) -> torch.Tensor:
    """The first step's logits under the current adapter, with no runtime: the prompt's
    ids through a copy of the model with the adapter merged."""
    merged = copy.deepcopy(ctx.policy.peft).merge_and_unload().eval()
    with torch.no_grad():
        return merged(torch.tensor([list(prompt_ids)])).logits[0, -1].float()


def test_settings_default_to_rft() -> None:
    assert TrainSettings().method == "rft" and replace(TrainSettings(), rounds=3).iterations == 3


def test_saved_adapter_loads_back(tmp_path: Path) -> None:
    from llmos_grammar.train.adapter import load_adapter

    ctx = context()
    rft_round(ctx, 1)
    ctx.policy.save(tmp_path)
    fresh = wrap(copy.deepcopy(varied_model().model), tokenizer(), name="tiny")
    loaded = load_adapter(fresh, tmp_path)
    merged = copy.deepcopy(ctx.policy.peft).merge_and_unload()
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, merged(ids).logits)


def test_training_goes_on_from_a_saved_adapter(tmp_path: Path) -> None:
    ctx = context()
    rft_round(ctx, 1)
    ctx.policy.save(tmp_path)
    fresh = wrap(copy.deepcopy(varied_model().model), tokenizer(), name="tiny")
    resumed = Policy(fresh, lora_r=8, init=tmp_path)  # the rank is the saved adapter's
    saved, loaded = lora(ctx.policy), lora(resumed)
    assert saved.keys() == loaded.keys() and saved
    for name in saved:
        torch.testing.assert_close(loaded[name], saved[name], rtol=0, atol=0)
    assert {n for n, p in resumed.model.named_parameters() if p.requires_grad} == set(saved)
