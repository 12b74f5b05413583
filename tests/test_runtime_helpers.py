"""Shared pieces for runtime tests: a tiny random Llama with the real tokenizer, scripted logits."""

from __future__ import annotations

import functools
from typing import Any

from llmos_grammar.errors import Location
from llmos_grammar.ir import GrammarSource, Machine, Policy
from llmos_grammar.results import ActionResult


@functools.lru_cache(maxsize=1)
def tokenizer() -> Any:
    from llmos_grammar.models import load_tokenizer

    return load_tokenizer()


@functools.lru_cache(maxsize=1)
def tiny_model() -> Any:
    """A 2-layer random Llama over the default model's vocabulary (no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmos_grammar.models import wrap

    tok = tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    return wrap(model, tok, name="tiny-random-llama")


def token_id(piece: str) -> int:
    """The id of `piece`, which must be exactly one token."""
    ids = tokenizer().encode(piece, add_special_tokens=False)
    assert len(ids) == 1, f"{piece!r} is {len(ids)} tokens: {ids}"
    return int(ids[0])


class Script:
    """A logits processor that makes greedy decoding emit `pieces` (one token each), then EOS."""

    def __init__(self, pieces: list[str]) -> None:
        self.ids = [token_id(p) for p in pieces]
        self.calls: list[tuple[str, str]] = []

    def __call__(self, state: str, text: str, logits: Any) -> None:
        step = len(self.calls)
        self.calls.append((state, text))
        target = self.ids[step] if step < len(self.ids) else tokenizer().eos_token_id
        logits[target] += 1e4


class FakeRunner:
    """Returns prepared results in order and records what it was asked to run."""

    def __init__(self, *results: ActionResult) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, str]] = []

    def run(self, action: str, text: str) -> ActionResult:
        self.calls.append((action, text))
        return self.results.pop(0) if self.results else ActionResult(stdout="")

    def close(self) -> None:
        pass


def lark(text: str) -> GrammarSource:
    return GrammarSource("lark", text, Location("<test>", 1, 1))


def machine(states: dict[str, Any], start: str, **kw: Any) -> Machine:
    return Machine(
        name="test", path="<test>", start=start, states=states, policy=Policy("<p>", {}), **kw
    )
