"""The llamacpp engine against the transformers engine, side by side in one run.

1. decode speed: tokens/s of both engines on the same machine and model, free text
   and under grammars/python.lark (best of N interleaved runs); target llamacpp >= 3.5x;
   and each engine alone (one row, argmax, no runtime): the ceiling a runtime can reach
2. resume on llamacpp: appending K tokens after an L-token context vs re-prefilling L+K
3. the calculator's task set at batch 1 and batch 8 on each engine (tokens/s, wall time,
   solved, and how many greedy final answers the engines share)

    python benchmarks/bench_engines.py [--tokens 64] [--repeat 3] [--limit N] [--sizes 1,8]
Cold start per engine: benchmarks/bench_cold_start.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
EXAMPLE = ROOT / "examples" / "calculator"
TASK = "Write Python code that prints the sum of the first 100 natural numbers."
ENGINES = ("transformers", "llamacpp")


def load_engines(machine: Any) -> dict[str, Any]:
    from llmos_grammar.engines.select import load_for

    return {name: load_for(name, machine.model) for name in ENGINES}


def decode_speed(lms: dict[str, Any], machine: Any, tokens: int, repeat: int) -> None:
    from bench_decode import decode_runtimes

    runtimes = {
        (engine, kind): rt
        for engine, lm in lms.items()
        for kind, rt in decode_runtimes(lm, machine, tokens).items()
    }
    rates: dict[tuple[str, str], list[float]] = {key: [] for key in runtimes}
    texts: dict[tuple[str, str], str] = {}
    for _ in range(repeat):  # interleaved: a burst of other load hits every setup alike
        for key, rt in runtimes.items():
            result = rt.run(TASK)
            rates[key].append(result.stats.tokens_per_s)
            texts[key] = result.text
        for engine, lm in lms.items():
            prompt = runtimes[(engine, "free")].machine.prompt
            rates.setdefault((engine, "engine alone"), []).append(bare_rate(lm, prompt, tokens))
    print(f"1. decode speed, {tokens} tokens after [CODE] (best of {repeat} interleaved runs)")
    for (engine, kind), values in rates.items():
        print(f"   {engine:12s} {kind:12s} {max(values):6.1f} tokens/s")
    for kind in ("free", "python.lark", "engine alone"):
        ratio = max(rates[("llamacpp", kind)]) / max(rates[("transformers", kind)])
        print(f"   {kind}: llamacpp / transformers = {ratio:.2f}x (target >= 3.5x)")
    for kind in ("free", "python.lark"):
        same = texts[("llamacpp", kind)] == texts[("transformers", kind)]
        share = max(rates[("llamacpp", kind)]) / max(rates[("llamacpp", "engine alone")])
        print(
            f"   {kind}: same text on both engines: {same}; "
            f"llamacpp runtime at {share:.0%} of its engine alone"
        )
    for rt in runtimes.values():
        rt.close()


def bare_rate(lm: Any, prompt: Any, tokens: int) -> float:
    """Tokens/s of the engine alone: one row, greedy argmax, no runtime (the engine's ceiling),
    after the same prompt as the runtimes' (attention grows with the context)."""
    from llmos_grammar.runtime.pieces import trusted
    from llmos_grammar.runtime.prompt import encode, prompt_pieces

    if lm.engine == "llamacpp":
        from llmos_grammar.engines.llamacpp import LlamaCppEngine

        engine: Any = LlamaCppEngine(lm.model, n_ctx=4096, rows=1)
    else:
        from llmos_grammar.engines.transformers import TransformersEngine

        engine = TransformersEngine(lm)
    row = engine.open_row()
    text = prompt_pieces(prompt, lm.tokenizer, TASK) + trusted(prompt.assistant_prefix)
    engine.append(row, encode(lm.tokenizer, text))
    logits = engine.forward([row])[row]
    started = time.perf_counter()
    for _ in range(tokens):
        engine.append(row, [int(logits.argmax())])
        logits = engine.forward([row])[row]
    rate = tokens / (time.perf_counter() - started)
    engine.close_row(row)
    return rate


def resume(lm: Any, context: int, added: int, repeat: int) -> None:
    from llmos_grammar.engines.llamacpp import LlamaCppEngine

    text = (ROOT / "grammars" / "python.lark").read_text() * 4
    ids = lm.tokenizer.encode(text, add_special_tokens=False)[: context + added]
    base, extra = ids[:context], ids[context:]
    engine = LlamaCppEngine(lm.model, n_ctx=2 * (context + added) + 64, rows=2)
    row = engine.open_row()
    engine.append(row, base)
    engine.forward([row])
    append_s, prefill_s = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        engine.append(row, extra)
        engine.forward([row])
        append_s.append(time.perf_counter() - started)
        engine.truncate(row, context)
        # a context of its own: in `engine` the fresh row would share row's cells
        other = LlamaCppEngine(lm.model, n_ctx=2 * (context + added) + 64, rows=2)
        fresh = other.open_row()
        started = time.perf_counter()
        other.append(fresh, base + extra)
        other.forward([fresh])
        prefill_s.append(time.perf_counter() - started)
        other.close()
    a, p = min(append_s), min(prefill_s)
    print(f"2. resume on llamacpp: append {added} tokens to a {context}-token context")
    print(f"   append {a * 1000:.1f} ms, re-prefill {p * 1000:.1f} ms: {p / a:.1f}x faster")
    engine.close()


def task_set(lms: dict[str, Any], machine: Any, limit: int, sizes: list[int]) -> None:
    from llmos_grammar.eval.scorers import answer_matches
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.runtime.vote import final_answer

    greedy = replace(
        machine,
        sampling=replace(machine.sampling, temperature=0.0),
        budgets=replace(machine.budgets, wall_s=3600.0),  # a busy machine cuts no row short
    )
    lines = [json.loads(x) for x in (EXAMPLE / "tasks.jsonl").read_text().splitlines() if x]
    lines = lines[:limit] if limit else lines
    tasks = [line["task"] for line in lines]
    print(f"3. calculator task set ({len(tasks)} tasks, greedy)")
    finals: dict[str, list[str]] = {}
    rates: dict[tuple[str, int], float] = {}
    for engine, lm in lms.items():
        first: list[list[int]] = []
        with Runtime(greedy, lm) as rt:
            rt.run_batch(tasks[:1], batch=1)  # warm-up: thread pools, sandbox standby
            for size in sizes:
                start = time.perf_counter()
                results = [row[0] for row in rt.run_batch(tasks, batch=size)]
                wall = time.perf_counter() - start
                tokens = sum(r.stats.generated_tokens for r in results)
                answers = [final_answer(r) for r in results]
                pairs = zip(answers, lines, strict=True)
                solved = sum(answer_matches(a, line["answer"]) for a, line in pairs)
                finals.setdefault(engine, answers)
                rates[(engine, size)] = tokens / wall
                ids = [r.completion_ids for r in results]
                first = first or ids
                same = sum(a == b for a, b in zip(ids, first, strict=True))
                print(
                    f"   {engine:12s} batch {size:2d}: {tokens / wall:6.1f} tokens/s, "
                    f"{wall:6.1f} s wall, solved {solved}/{len(tasks)}, "
                    f"{same}/{len(tasks)} token-identical to batch {sizes[0]}",
                    flush=True,
                )
    for engine in lms:
        gain = rates[(engine, sizes[-1])] / rates[(engine, sizes[0])]
        print(f"   {engine}: batch {sizes[-1]} / batch {sizes[0]} tokens/s = {gain:.2f}x")
    fastest = rates[("llamacpp", sizes[-1])] / rates[("transformers", sizes[-1])]
    print(f"   llamacpp / transformers at batch {sizes[-1]}: {fastest:.2f}x")
    same = sum(a == b for a, b in zip(finals["transformers"], finals["llamacpp"], strict=True))
    print(f"   greedy final answers shared by both engines (batch {sizes[0]}): {same}/{len(tasks)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--context", type=int, default=1500)
    parser.add_argument("--added", type=int, default=16)
    parser.add_argument("--limit", type=int, default=0, help="first N calculator tasks (0: all)")
    parser.add_argument("--sizes", default="1,8")
    args = parser.parse_args()

    from llmos_grammar.engines.select import llamacpp_available
    from llmos_grammar.spec.loader import load

    if not llamacpp_available():
        print("llama-cpp-python is not installed (bash setup.sh builds it)", file=sys.stderr)
        return 1
    machine = load(EXAMPLE / "spec.yaml")
    lms = load_engines(machine)
    decode_speed(lms, machine, args.tokens, args.repeat)
    resume(lms["llamacpp"], args.context, args.added, args.repeat)
    task_set(lms, machine, args.limit, [int(s) for s in args.sizes.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
