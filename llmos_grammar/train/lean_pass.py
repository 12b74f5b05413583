"""The training pass: log-probabilities only where the loss is, the shared prompt computed once.

For the examples of one optimizer step:
- the longest run of ids that every example starts with (the system prompt and
  its worked examples) is fed once; every example attends to those keys and
  values, whose gradients add up over the micro-batches and go back through the
  prefix once at the end (the gradient is the same as feeding the prefix with
  every example);
- the rest of each example (the task, the completion) is fed in micro-batches
  of at most `tokens` tokens (right-padded: a causal model's real tokens never
  see the padding), and each micro-batch's loss is backpropagated at once, so
  memory does not grow with the number of examples;
- only the hidden states at positions whose next token the model chose go
  through the output layer (`chosen_logprobs`, chunked), never the prompt's.

The loss is  -sum over examples of weight * sum over chosen tokens of log p,
divided by `norm` (default: the chosen tokens of all examples).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmos_grammar.train.chosen_logprob import chosen_logprobs
from llmos_grammar.train.examples import Example

if TYPE_CHECKING:
    from torch import Tensor
    from torch.nn import Module
    from transformers import PreTrainedModel

MICRO_TOKENS = 1024  # fed tokens (rows x longest suffix) per micro-batch
MIN_PREFIX = 16  # a shorter shared prefix is fed with each example instead


@dataclass(frozen=True)
class PassStats:
    """What one pass did: the loss, the tokens it learned from, fed, and shared."""

    loss: float  # the objective's value (summed over micro-batches)
    nll: float  # mean -log p over the chosen tokens
    chosen: int  # tokens with loss
    fed: int  # tokens fed with gradient (padding included)
    prefix: int  # shared prefix tokens, fed once without gradient
    micro_batches: int
    seconds: float


def shared_length(examples: Sequence[Example]) -> int:
    """How many leading ids every example shares, short of each one's last prompt id
    (which predicts the first completion token, so it must be fed with gradient)."""
    first = examples[0].ids
    limit = min(len(e.prompt_ids) for e in examples) - 1
    length = 0
    while length < limit and all(e.ids[length] == first[length] for e in examples):
        length += 1
    return length if length >= MIN_PREFIX else 0


def micro_batches(examples: Sequence[Example], skip: int, tokens: int) -> list[list[Example]]:
    """Examples grouped (shortest first) so that rows x longest suffix stays within `tokens`."""
    out: list[list[Example]] = []
    for ex in sorted(examples, key=lambda e: len(e.ids)):
        width = len(ex.ids) - skip
        if out and (len(out[-1]) + 1) * width <= tokens:
            out[-1].append(ex)
        else:
            out.append([ex])
    return out


def backward_pass(
    model: PreTrainedModel,
    examples: Sequence[Example],
    *,
    norm: float | None = None,
    tokens: int = MICRO_TOKENS,
    share_prefix: bool = True,
) -> PassStats:
    """Accumulate into `model`'s gradients the loss of `examples` (see the module docstring)."""
    started = time.perf_counter()
    learned = [e for e in examples if e.chosen]
    total = sum(e.chosen for e in learned)
    if not learned:
        return PassStats(0.0, 0.0, 0, 0, 0, 0, time.perf_counter() - started)
    skip = shared_length(learned) if share_prefix else 0
    shared = _Shared(model, learned[0].ids[:skip]) if skip else None
    loss = nll = 0.0
    fed = 0
    groups = micro_batches(learned, skip, tokens)
    for group in groups:
        logp, weights = _logprobs(model, group, skip, shared.leaves if shared else None)
        part = -(logp * weights).sum() / (norm or total)
        part.backward()
        loss += float(part.detach())
        nll -= float(logp.detach().sum())
        fed += len(group) * max(len(e.ids) - skip for e in group)
    if shared is not None:
        shared.backward()
    seconds = time.perf_counter() - started
    return PassStats(loss, nll / total, total, fed, skip, len(groups), seconds)


def chosen_token_logprobs(
    model: PreTrainedModel, examples: Sequence[Example], share_prefix: bool = True
) -> list[Tensor]:
    """Each example's log-probabilities at its chosen tokens, in order (no gradient)."""
    import torch

    with torch.no_grad():
        skip = shared_length(examples) if share_prefix else 0
        prefix = _prefix(model, examples[0].ids[:skip]) if skip else None
        out = []
        for ex in examples:
            logp, _ = _logprobs(model, [ex], skip, prefix)
            out.append(logp)
        return out


Prefix = list[tuple["Tensor", "Tensor"]]  # each layer's keys and values of the shared ids


def _prefix(model: PreTrainedModel, ids: Sequence[int]) -> Prefix:
    """The shared ids' keys and values under the current weights (gradient as the caller's
    mode has it)."""
    import torch

    ids_t = torch.tensor([list(ids)], dtype=torch.long, device=model.device)
    out = model.get_decoder()(input_ids=ids_t, use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values  # named so before 5.x
    return [(layer.keys, layer.values) for layer in cache.layers]


class _Shared:
    """The shared prefix fed once with gradient: the micro-batches read detached copies
    (leaves) whose gradients add up; `backward` sends the sum back through the prefix."""

    def __init__(self, model: PreTrainedModel, ids: Sequence[int]) -> None:
        self.kv = _prefix(model, ids)
        self.leaves = [(k.detach().requires_grad_(), v.detach().requires_grad_())
                       for k, v in self.kv]  # fmt: skip

    def backward(self) -> None:
        import torch

        pairs = []
        for (k, v), (leaf_k, leaf_v) in zip(self.kv, self.leaves, strict=True):
            for tensor, leaf in ((k, leaf_k), (v, leaf_v)):
                if tensor.requires_grad and leaf.grad is not None:
                    pairs.append((tensor, leaf.grad))
        if pairs:
            torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])
        self.kv, self.leaves = [], []


def _logprobs(
    model: PreTrainedModel, group: Sequence[Example], skip: int, prefix: Prefix | None
) -> tuple[Tensor, Tensor]:
    """The group's log-probabilities at chosen tokens (flat) and each one's weight."""
    import torch
    from transformers import DynamicCache

    device = model.device
    suffixes = [e.ids[skip:] for e in group]
    width = max(len(s) for s in suffixes)
    ids = torch.zeros((len(group), width), dtype=torch.long, device=device)
    rows, cols, targets, weights = [], [], [], []
    for i, (ex, suffix) in enumerate(zip(group, suffixes, strict=True)):
        ids[i, : len(suffix)] = torch.tensor(suffix, dtype=torch.long)
        start = len(ex.prompt_ids) - 1 - skip  # the position that predicts completion[0]
        for j, (token, keep) in enumerate(zip(ex.completion_ids, ex.mask, strict=True)):
            if keep:
                rows.append(i)
                cols.append(start + j)
                targets.append(token)
                weights.append(ex.weight)
    positions = torch.arange(skip, skip + width, device=device)[None].expand(len(group), -1)
    kw: dict[str, object] = {}
    if prefix is not None:
        data = [(k.expand(len(group), -1, -1, -1), v.expand(len(group), -1, -1, -1))
                for k, v in prefix]  # fmt: skip
        kw[_cache_keyword(model.get_decoder())] = DynamicCache(data, config=model.config)
    out = model.get_decoder()(input_ids=ids, position_ids=positions, use_cache=bool(kw), **kw)
    hidden = out.last_hidden_state[torch.tensor(rows), torch.tensor(cols)]
    head = _output_weight(model)
    logp = chosen_logprobs(hidden, head, torch.tensor(targets, device=device))
    return logp, torch.tensor(weights, dtype=logp.dtype, device=device)


def _output_weight(model: PreTrainedModel) -> Tensor:
    head: Module | None = model.get_output_embeddings()
    if head is None or getattr(head, "bias", None) is not None:
        raise ValueError(
            f"{type(model).__name__}: the training pass needs a bias-free output layer"
        )
    import torch

    weight = head.weight
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"{type(model).__name__}: the output layer has no weight matrix")
    return weight


def _cache_keyword(decoder: Module) -> str:
    """`cache` in recent transformers, `past_key_values` before."""
    params = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
