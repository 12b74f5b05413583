"""Training examples from runs: ids, the loss mask (`Result.chosen`) and a weight per example."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmos_grammar.libtypes.hf import Tokenizer
from llmos_grammar.runtime.events import Result


@dataclass(frozen=True)
class Example:
    """One run to learn from. `mask[i]` is 1 where the model chose `completion_ids[i]`
    (the loss sees only those); `weight` scales its tokens' log-probabilities in the loss
    (1 for RFT, the group-normalized advantage for GRPO)."""

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    mask: tuple[int, ...]
    weight: float = 1.0
    task_index: int = -1

    @property
    def ids(self) -> tuple[int, ...]:
        return self.prompt_ids + self.completion_ids

    @property
    def chosen(self) -> int:
        """How many tokens the loss sees."""
        return sum(self.mask)


def example(
    result: Result, eos_id: int, eos_ids: frozenset[int], weight: float = 1.0, task: int = -1
) -> Example:
    """The Example of a finished run. A completion that does not end with an
    end-of-sequence id (a budget ran out, or an action ended the machine) gets `eos_id`
    appended with mask 0: what ends a turn is not learned from a run that did not end it."""
    ids, mask = list(result.completion_ids), list(result.chosen)
    if len(ids) != len(mask):
        raise ValueError(f"a result has {len(ids)} completion ids but {len(mask)} mask entries")
    if not ids or ids[-1] not in eos_ids:
        ids.append(eos_id)
        mask.append(0)
    return Example(tuple(result.prompt_ids), tuple(ids), tuple(mask), weight, task)


def chosen_text(result: Result, tokenizer: Tokenizer) -> str:
    """The text of the tokens the model chose, in order (what two runs are compared by)."""
    picked = [t for t, m in zip(result.completion_ids, result.chosen, strict=True) if m]
    return tokenizer.decode(picked)


def distinct(keyed: Sequence[tuple[int, Result]], tokenizer: Tokenizer) -> list[tuple[int, Result]]:
    """(task, result) pairs with each task's repeats of the same chosen text dropped."""
    seen: set[tuple[int, str]] = set()
    out = []
    for task, result in keyed:
        key = (task, chosen_text(result, tokenizer))
        if key not in seen:
            seen.add(key)
            out.append((task, result))
    return out


def eos_id_of(tokenizer: Tokenizer) -> int:
    """The tokenizer's end-of-sequence id (appended to completions cut short)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-sequence id")
    return int(eos)
