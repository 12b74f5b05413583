"""The packed-cache engine: every row's logits equal those of running it alone."""

from __future__ import annotations

import torch

from llmos_grammar.engines.transformers import TransformersEngine
from llmos_grammar.runtime.kv import KVSequence
from tests.test_runtime_helpers import tiny_model, tokenizer


def same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def ids(text: str) -> list[int]:
    return list(tokenizer().encode(text, add_special_tokens=False))


def alone(tokens: list[int]) -> torch.Tensor:
    seq = KVSequence(tiny_model())
    seq.append(tokens)
    return seq.flush()


def test_rows_of_different_lengths_match_running_alone() -> None:
    engine = TransformersEngine(tiny_model())
    a, b = engine.open_row(), engine.open_row()
    head_a, head_b = ids("print(sum(range(1, 101)))\n"), ids("x = 3")
    engine.append(a, head_a)
    engine.append(b, head_b)
    out = engine.forward([a, b])
    same(out[a], alone(head_a))
    same(out[b], alone(head_b))
    # row a takes three injected tokens while row b decodes one: one pass of 4 tokens, no pads
    more_a, more_b = ids("\n[OUTPUT]")[:3], ids(" +")[:1]
    engine.append(a, more_a)
    engine.append(b, more_b)
    fed, passes = engine.counters.tokens_fed, engine.counters.forward_passes
    out = engine.forward([a, b])
    assert engine.counters.tokens_fed - fed == len(more_a) + len(more_b)
    assert engine.counters.forward_passes == passes + 1
    assert engine.counters.padding == 0
    same(out[a], alone(head_a + more_a))
    same(out[b], alone(head_b + more_b))


def test_truncating_one_row_masks_its_columns() -> None:
    engine = TransformersEngine(tiny_model())
    a, b = engine.open_row(), engine.open_row()
    head, wrong, right = ids("The answer is"), ids(" 387 and more"), ids(" 613.")
    other = ids("Some other row that keeps decoding")
    engine.append(a, head + wrong)
    engine.append(b, other)
    engine.forward([a, b])
    engine.truncate(a, len(head))
    assert engine.ids(a) == head and engine.cached(a) == len(head)
    engine.append(a, right)
    engine.append(b, ids(" now"))
    out = engine.forward([a, b])
    same(out[a], alone(head + right))
    same(out[b], alone(other + ids(" now")))
    # truncating into the cache and asking again feeds the last id anew
    engine.truncate(b, len(other))
    out = engine.forward([b])
    same(out[b], alone(other))


def test_a_joining_row_rides_in_the_same_pass() -> None:
    engine = TransformersEngine(tiny_model())
    a = engine.open_row()
    first = ids("x = 1")
    engine.append(a, first)
    engine.forward([a])
    b = engine.open_row()
    prompt = ids("A much longer prompt than the first row has, so the cache grows left.")
    engine.append(b, prompt)
    engine.append(a, ids(" +"))
    fed = engine.counters.tokens_fed
    out = engine.forward([a, b])
    # one pass: b's prompt and a's one token side by side, nothing padded
    assert engine.counters.tokens_fed - fed == len(prompt) + 1
    assert engine.counters.padding == 0
    same(out[b], alone(prompt))
    same(out[a], alone(first + ids(" +")))
    engine.close_row(a)
    engine.append(b, ids(" ok"))
    out = engine.forward([b])
    same(out[b], alone(prompt + ids(" ok")))


def test_compaction_keeps_logits() -> None:
    engine = TransformersEngine(tiny_model(), compact_min=10_000)
    a, b = engine.open_row(), engine.open_row()
    text_a, text_b = ids("def f(x):\n    return x * 2\n"), ids("y")
    engine.append(a, text_a)
    engine.append(b, text_b)
    engine.forward([a, b])
    engine.truncate(a, 4)
    engine.append(a, ids(" = 2"))
    engine.append(b, ids(" = 5 * 7"))
    before = engine.forward([a, b])
    before = {row: logits.clone() for row, logits in before.items()}
    width = engine.width
    engine.compact()
    assert engine.width < width
    # left: the columns a and b see (no prefix is pinned: both prompts are short)
    assert not bool(engine.pinned.any())
    assert engine.width == engine.cached(a) + engine.cached(b)
    engine.append(a, ids(" +"))
    engine.append(b, ids(" +"))
    after = engine.forward([a, b])
    same(after[a], alone(text_a[:4] + ids(" = 2") + ids(" +")))
    same(after[b], alone(text_b + ids(" = 5 * 7") + ids(" +")))
    same(before[a], alone(text_a[:4] + ids(" = 2")))


def test_one_row_feeds_without_a_mask_like_a_plain_cache() -> None:
    engine = TransformersEngine(tiny_model())
    a = engine.open_row()
    engine.append(a, ids("x = 1"))
    engine.forward([a])
    engine.append(a, ids(" + 2"))
    engine.forward([a])
    assert engine.width == len(ids("x = 1") + ids(" + 2")) and bool(engine.live.all())
    assert engine.counters.padding == 0


def test_a_joining_row_reuses_the_prefix_it_shares_with_the_first_prompt() -> None:
    engine = TransformersEngine(tiny_model())
    system = ids("You are a calculator. Answer by writing Python code, then read its output.\n")
    first = system + ids("What is 2 + 2?")
    a = engine.open_row()
    engine.append(a, first)
    engine.forward([a])
    b = engine.open_row()
    joined = system + ids("What is 1000 minus 387?")
    engine.append(b, joined)
    engine.append(a, ids(" ok"))
    fed = engine.counters.tokens_fed
    out = engine.forward([a, b])
    common = next(i for i, (x, y) in enumerate(zip(first, joined, strict=False)) if x != y)
    assert common >= len(system)
    # only what follows the common prefix was computed for b (and a's one token)
    assert engine.counters.tokens_fed - fed == 1 + len(joined) - common
    assert engine.row_counters(b).tokens_fed == len(joined)
    same(out[b], alone(joined))
    same(out[a], alone(first + ids(" ok")))


def test_a_row_after_all_others_left_still_reuses_the_prefix() -> None:
    engine = TransformersEngine(tiny_model())
    system = ids("You are a calculator. Answer by writing Python code, then read its output.\n")
    a = engine.open_row()
    engine.append(a, system + ids("What is 2 + 2?"))
    engine.forward([a])
    engine.close_row(a)
    b = engine.open_row()
    joined = system + ids("Compute 1000 minus 387.")
    engine.append(b, joined)
    fed = engine.counters.tokens_fed
    out = engine.forward([b])
    assert engine.counters.tokens_fed - fed < len(joined) - len(system) + 4
    same(out[b], alone(joined))
    engine.append(b, ids(" ok"))
    same(engine.forward([b])[b], alone(joined + ids(" ok")))


def test_the_cache_buffers_grow_past_their_first_capacity() -> None:
    from llmos_grammar.engines.growing import MIN_CAPACITY

    engine = TransformersEngine(tiny_model())
    a, b = engine.open_row(), engine.open_row()
    text = ids("count = count + 1\n" * 40)
    assert len(text) > MIN_CAPACITY
    engine.append(a, text[:100])
    engine.append(b, text[:7])
    engine.forward([a, b])
    engine.append(a, text[100:])
    engine.append(b, text[7:20])
    out = engine.forward([a, b])
    assert engine.width > MIN_CAPACITY
    same(out[a], alone(text))
    same(out[b], alone(text[:20]))


def test_rows_that_start_together_compute_their_common_prompt_once() -> None:
    engine = TransformersEngine(tiny_model())
    system = ids("You are a calculator. Answer by writing Python code, then read its output.\n")
    prompts = [system + ids(q) for q in ("What is 2 + 2?", "Compute 1000 minus 387.", "Is 9 odd?")]
    rows = [engine.open_row() for _ in prompts]
    for row, prompt in zip(rows, prompts, strict=True):
        engine.append(row, prompt)
    out = engine.forward(rows)
    common = [
        next(i for i, (x, y) in enumerate(zip(prompts[0], p, strict=False)) if x != y)
        for p in prompts[1:]
    ]
    assert min(common) >= len(system)
    # the first prompt whole (it is pinned), then only what each other prompt adds
    expected = len(prompts[0]) + sum(len(p) - c for p, c in zip(prompts[1:], common, strict=True))
    assert engine.counters.tokens_fed == expected
    for row, prompt in zip(rows, prompts, strict=True):
        same(out[row], alone(prompt))
