"""Small pieces of the runtime: trigger detection, sampling, prompts, traces, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llmos_grammar.cli.run import exit_code
from llmos_grammar.ir import Prompt, Sampling
from llmos_grammar.runtime import triggers
from llmos_grammar.runtime.events import TokenEvent, TransitionEvent
from llmos_grammar.runtime.prompt import prompt_text
from llmos_grammar.runtime.sampling import make_generator, sample
from llmos_grammar.trace import TraceWriter, read_trace, transcript
from tests.test_runtime_helpers import tokenizer

TRIGGERS = ["[CODE]", "[SQL]", "<run>"]


def test_complete_trigger_found() -> None:
    hit = triggers.find(b"Let me [CODE]", TRIGGERS, 3)
    assert hit is not None and hit.complete and hit.start == 7


def test_trigger_split_across_tokens_completes_when_unambiguous() -> None:
    hit = triggers.find(b"Let me [CO", TRIGGERS, 2)
    assert hit is not None and not hit.complete
    assert hit.trigger == b"[CODE]" and hit.matched == 3 and hit.start == 7


def test_ambiguous_or_short_prefix_waits() -> None:
    assert triggers.find(b"Let me [", TRIGGERS, 1) is None  # [CODE] or [SQL]
    assert triggers.find(b"a <", TRIGGERS, 1) is None  # one byte is too little
    assert triggers.find(b"a <r", TRIGGERS, 1) is not None


def test_no_trigger() -> None:
    assert triggers.find(b"plain text [x]", TRIGGERS, 4) is None


def test_token_at() -> None:
    assert triggers.token_at([0, 3, 5], 4) == 1
    assert triggers.token_at([0, 3, 5], 5) == 2


def test_greedy_and_top_k_one_agree() -> None:
    logits = torch.tensor([0.1, 2.0, -1.0, float("-inf")])
    assert sample(logits, Sampling()) == 1
    sampling = Sampling(temperature=1.0, top_k=1, seed=3)
    assert sample(logits, sampling, make_generator(sampling)) == 1


def test_seeded_sampling_repeats_and_respects_mask() -> None:
    logits = torch.randn(1000)
    logits[500:] = float("-inf")
    sampling = Sampling(temperature=1.5, top_p=0.9, seed=7)
    first = [sample(logits, sampling, g) for g in [make_generator(sampling)] for _ in range(20)]
    second = [sample(logits, sampling, g) for g in [make_generator(sampling)] for _ in range(20)]
    assert first == second
    assert all(t < 500 for t in first)


def test_prompt_uses_chat_template_and_user_template() -> None:
    prompt = Prompt(system="You compute.", user="Task: {task} {json}")
    text = prompt_text(prompt, tokenizer(), "2+2")
    assert "<|im_start|>system\nYou compute.<|im_end|>" in text
    assert "Task: 2+2 {json}" in text
    assert text.endswith("<|im_start|>assistant\n")
    plain = prompt_text(Prompt(system="S", chat_template=False), tokenizer(), "T")
    assert plain == "S\n\nT\n"


def test_trace_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, {"spec": "s.yaml"}) as trace:
        trace.write(TokenEvent("talk", "Hi", (1, 2)))
        trace.write(TransitionEvent("talk", "code", "[CODE]"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0]["kind"] == "header" and records[0]["spec"] == "s.yaml"
    assert records[1]["token_ids"] == [1, 2] and records[2]["target"] == "code"
    assert transcript(records) == "Hi"
    assert all(records)
    typed = read_trace(path)  # the same trace as the events that were written
    assert typed.events == (
        TokenEvent("talk", "Hi", (1, 2)),
        TransitionEvent("talk", "code", "[CODE]"),
    )
    assert typed.header == records[0] and typed.transcript == "Hi"


@pytest.mark.parametrize(
    ("reason", "code"),
    [("final", 0), ("eos", 0), ("refused", 3), ("max_tokens", 4), ("wall_s", 4)],
)
def test_exit_codes(reason: str, code: int) -> None:
    assert exit_code(reason) == code


def test_a_refused_last_action_exits_3() -> None:
    assert exit_code("final", last_refused=True) == 3
    assert exit_code("max_actions", last_refused=True) == 3
