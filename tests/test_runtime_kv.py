"""KV-cache append and crop give the same next-token logits as a full re-prefill."""

from __future__ import annotations

import torch

from llmos_grammar.runtime.kv import KVSequence
from tests.test_runtime_helpers import tiny_model, tokenizer


def ids(text: str) -> list[int]:
    return list(tokenizer().encode(text, add_special_tokens=False))


def prefill(tokens: list[int]) -> torch.Tensor:
    seq = KVSequence(tiny_model())
    seq.append(tokens)
    return seq.flush()


def test_append_equals_reprefill() -> None:
    context = ids("print(sum(range(1, 101)))\n[/CODE]")
    output = ids("\n[OUTPUT]\n5050\n[/OUTPUT]\nThe answer is")
    seq = KVSequence(tiny_model())
    seq.append(context)
    seq.flush()
    seq.append(output)
    appended = seq.flush()
    assert seq.forward_passes == 2 and seq.forward_tokens == len(context) + len(output)
    full = prefill(context + output)
    torch.testing.assert_close(appended, full, rtol=1e-4, atol=1e-4)


def test_token_by_token_equals_one_pass() -> None:
    tokens = ids("x = 1000 - 387\nprint(x)\n")
    seq = KVSequence(tiny_model())
    for token in tokens:
        seq.append([token])
        last = seq.flush()
    torch.testing.assert_close(last, prefill(tokens), rtol=1e-4, atol=1e-4)


def test_truncate_crops_the_cache_then_resumes() -> None:
    head = ids("The answer is")
    wrong, right = ids(" 387 and more"), ids(" 613.")
    seq = KVSequence(tiny_model())
    seq.append(head + wrong)
    seq.flush()
    seq.truncate(len(head))
    assert seq.cached == len(head) and seq.ids == head
    seq.append(right)
    torch.testing.assert_close(seq.flush(), prefill(head + right), rtol=1e-4, atol=1e-4)


def test_changed_context_changes_logits() -> None:
    a = prefill(ids("print(1)\n"))
    b = prefill(ids("print(2)\n"))
    assert not torch.allclose(a, b)


def test_heal_append_retokenizes_across_the_boundary() -> None:
    from llmos_grammar.runtime.kv import heal_append

    lm = tiny_model()
    table = lm.token_table()
    seq = KVSequence(lm)
    seq.append(ids("x =") + ids(" "))
    seq.flush()
    queued = heal_append(seq, table, lm.tokenizer, "print")
    # " " + "print" becomes the single natural token " print"; the cache was cropped
    assert seq.ids == ids("x =") + ids(" print") and queued == 1
    assert seq.cached == len(ids("x ="))
    torch.testing.assert_close(seq.flush(), prefill(ids("x =") + ids(" print")))


def test_heal_append_keeps_special_tokens() -> None:
    from llmos_grammar.runtime.kv import heal_append

    lm = tiny_model()
    seq = KVSequence(lm)
    end = lm.tokenizer.eos_token_id
    seq.append([end])
    heal_append(seq, lm.token_table(), lm.tokenizer, "Hi")
    assert seq.ids[0] == end and lm.tokenizer.decode(seq.ids[1:]) == "Hi"


def test_append_equals_reprefill_with_grouped_query_sdpa(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # load_model() turns this on for CPU; the tiny model has 2 key/value heads for 4 queries
    monkeypatch.setenv("TRANSFORMERS_SDPA_FORCE_GQA", "1")
    config = tiny_model().model.config
    assert config.num_key_value_heads < config.num_attention_heads
    test_append_equals_reprefill()
    test_truncate_crops_the_cache_then_resumes()
