"""Decode benchmarks, each a ratio measured side by side in one run on the same model.

1. constraint overhead: tokens/s in a Python-grammar state vs a free text state
2. resume: appending K tokens to a cached L-token context vs re-prefilling L+K tokens
3. forced text: K tokens (1 to 32) fed in one forward pass, as the runtime feeds a
   delimiter or an action's output, vs the same K tokens fed one forward pass each, as
   decoding them token by token would; and forward passes per sampled token in a run of
   the calculator example

    python benchmarks/bench_decode.py [--model NAME] [--tokens 64] [--repeat 5]
        [--forced 1,4,8,16,32] [--sections 1,2,3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "calculator" / "spec.yaml"
TASK = "What is the sum of the first 100 natural numbers?"


def no_eos(eos: frozenset[int]) -> Any:
    def processor(_state: str, _text: str, logits: Any) -> None:
        for token in eos:
            logits[token] = float("-inf")

    return processor


def decode_runtimes(lm: Any, machine: Any, tokens: int) -> dict[str, Any]:
    """Two runtimes that decode `tokens` tokens after "[CODE]\n": free text, and python.lark."""
    from dataclasses import replace

    from llmos_grammar.errors import Location
    from llmos_grammar.ir import Budgets, FinalState, GrammarSource, GrammarState, Prompt, TextState
    from llmos_grammar.runtime import Runtime

    grammar = GrammarSource("lark", (ROOT / "grammars" / "python.lark").read_text(), Location("x"))
    prompt = Prompt(system=machine.prompt.system, assistant_prefix="[CODE]\n")
    budgets = Budgets(max_tokens=tokens, max_actions=0, wall_s=600)
    free = replace(
        machine,
        start="s",
        states={"s": TextState("s"), "end": FinalState("end")},
        prompt=prompt,
        budgets=budgets,
    )
    code = GrammarState("s", grammar, close="[/CODE]", next="end")
    constrained = replace(free, states={"s": code, "end": FinalState("end")})
    return {
        "free": Runtime(free, lm, logits_processors=[no_eos(lm.eos_ids)]),
        "python.lark": Runtime(constrained, lm, logits_processors=[no_eos(lm.eos_ids)]),
    }


def overhead(lm: Any, machine: Any, tokens: int, repeat: int) -> None:
    runtimes = decode_runtimes(lm, machine, tokens)
    rates: dict[str, list[float]] = {name: [] for name in runtimes}
    ttft: dict[str, list[float]] = {name: [] for name in runtimes}
    counts: dict[str, int] = {}
    for _ in range(repeat):
        for name, rt in runtimes.items():
            result = rt.run(TASK)
            rates[name].append(result.stats.tokens_per_s)
            ttft[name].append(result.stats.time_to_first_token_s)
            counts[name] = result.stats.generated_tokens
    # best of N, runs interleaved: robust to other load on the machine
    free_rate = max(rates["free"])
    gram_rate = max(rates["python.lark"])
    print(f"1. constraint overhead (best of {repeat} interleaved runs)")
    for name in runtimes:
        print(
            f"   {name:12s} {max(rates[name]):6.1f} tokens/s "
            f"({counts[name]} tokens), first token {min(ttft[name]):.3f} s"
        )
    print(f"   ratio constrained/unconstrained: {gram_rate / free_rate:.2f} (target >= 0.9)")


def resume(lm: Any, context: int, added: int, repeat: int) -> None:
    from llmos_grammar.runtime.kv import KVSequence

    text = (ROOT / "grammars" / "python.lark").read_text() * 4
    ids = lm.tokenizer.encode(text, add_special_tokens=False)[: context + added]
    base, extra = ids[:context], ids[context:]
    seq = KVSequence(lm)
    seq.append(base)
    seq.flush()
    append_s, prefill_s = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        seq.append(extra)
        seq.flush()
        append_s.append(time.perf_counter() - started)
        seq.truncate(context)
        fresh = KVSequence(lm)
        started = time.perf_counter()
        fresh.append(base + extra)
        fresh.flush()
        prefill_s.append(time.perf_counter() - started)
    a, p = min(append_s), min(prefill_s)
    print(f"2. resume: append {added} tokens to a {context}-token cache vs re-prefill")
    print(f"   append {a * 1000:.1f} ms, re-prefill {p * 1000:.1f} ms")
    print(f"   speed-up {p / a:.1f}x (target >= 20x; bound ~ L/K = {context / added:.0f}x)")


def forced(lm: Any, machine: Any, lengths: list[int], repeat: int) -> None:
    """K tokens fed in one forward pass vs the same K tokens one pass each, after a context."""
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.runtime.kv import KVSequence

    text = (ROOT / "grammars" / "python.lark").read_text()
    ids = lm.tokenizer.encode(text, add_special_tokens=False)
    context, pieces = ids[:64], ids[64:]
    seq = KVSequence(lm)
    seq.append(context)
    seq.flush()
    print(
        "3. forced text: K tokens fed in one forward pass vs the same K tokens fed one pass\n"
        "   each (the passes of decoding them token by token; sampling not timed), after a\n"
        f"   {len(context)}-token context, best of {repeat} (K=1 is the control: the same work)"
    )
    for k in lengths:
        piece = pieces[:k]
        one: list[float] = []
        each: list[float] = []
        for _ in range(repeat):
            before = seq.forward_passes
            started = time.perf_counter()
            seq.append(piece)
            seq.flush()
            one.append(time.perf_counter() - started)
            one_passes = seq.forward_passes - before
            seq.truncate(len(context))
            before = seq.forward_passes
            started = time.perf_counter()
            for token in piece:
                seq.append([token])
                seq.flush()
            each.append(time.perf_counter() - started)
            each_passes = seq.forward_passes - before
            seq.truncate(len(context))
        a, b = min(one), min(each)
        print(
            f"   K={len(piece):3d}: {one_passes} pass {a * 1000:7.1f} ms, "
            f"{each_passes:2d} pass(es) {b * 1000:8.1f} ms = {b / a:5.1f}x"
        )
    with Runtime(machine, lm) as rt:
        result = rt.run(TASK)
    s = result.stats
    print(
        f"   calculator run: {s.generated_tokens} sampled, {s.forced_tokens} forced/injected "
        f"tokens, {s.forward_passes} forward passes "
        f"= {s.forward_passes / max(1, s.generated_tokens):.2f} per sampled token "
        f"({s.forward_passes - s.generated_tokens:+d} passes beyond one per sampled token)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--context", type=int, default=1500)
    parser.add_argument("--added", type=int, default=16)
    parser.add_argument("--forced", default="1,4,8,16,32", help="forced text lengths K")
    parser.add_argument("--sections", default="1,2,3", help="which benchmarks to run")
    args = parser.parse_args()

    from llmos_grammar.models import load_model
    from llmos_grammar.spec.loader import load

    machine = load(SPEC)
    lm = load_model(args.model or machine.model)
    print(f"model {lm.name}, device {lm.device}")
    sections = {int(n) for n in args.sections.split(",")}
    if 1 in sections:
        overhead(lm, machine, args.tokens, args.repeat)
    if 2 in sections:
        resume(lm, args.context, args.added, args.repeat)
    if 3 in sections:
        forced(lm, machine, [int(k) for k in args.forced.split(",")], args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
