"""Time to first token in a session (KV cache kept) against re-sending the whole conversation.

A 10-turn conversation with the chat example on the default model. At each
turn the session feeds only the new turn's tokens; a chat frontend re-sends
the whole conversation, here in a new row of one engine (which copies the
system prompt's keys and values from its first row, as prefix caching does).
Both are timed the same way, from the start of the turn to its first
next-token logits (a logits processor stops the turn there; the session rolls
the stopped turn back), each the median of `--repeats` interleaved tries; then
the turn runs for real. Prints both times and their ratio per turn side by
side (prompt: tokens before the reply, new: tokens the session feeds) and
draws benchmarks/session_ttft.png.

    python benchmarks/bench_session.py [--turns 10] [--repeats 5] [--engine transformers]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "What is 12 times 7?",
    "Add 100 to that.",
    "What is the square root of 144?",
    "Name three primary colours.",
    "What is 2 to the power of 10?",
    "Which planet is closest to the sun?",
    "What is 15 percent of 80?",
    "How many days are in a leap year?",
    "What is 9 times 9?",
    "Sum the numbers from 1 to 10.",
]


class FirstLogits(Exception):
    """Raised by the probe at the first next-token logits of a turn: the turn stops there."""


def probe(state: str, text: str, logits: Any) -> None:
    raise FirstLogits


def first_logits(rt: Any, events: Iterator[Any]) -> float:
    """Seconds until the turn behind `events` has its first next-token logits."""
    rt.logits_processors = (probe,)
    started = time.perf_counter()
    try:
        for _ in events:
            pass
    except FirstLogits:
        return time.perf_counter() - started
    finally:
        rt.logits_processors = ()
    raise RuntimeError("the turn ended without a decode step")


def resend(session: Any, engine: Any, question: str) -> Iterator[Any]:
    """The turn as a chat frontend runs it: the whole conversation into a fresh row.

    The row is new each time; the engine is the same one, so the system prompt's
    keys and values are copied in (the engine's shared prefix) rather than computed.
    """
    from llmos_grammar.runtime.drive import drive
    from llmos_grammar.runtime.kv import KVSequence
    from llmos_grammar.runtime.loop import Run
    from llmos_grammar.runtime.prompt import history_pieces, next_turn_pieces

    rt, prompt, tok = session.rt, session.machine.prompt, session.rt.lm.tokenizer
    exchanges = [(t.user, t.reply) for t in session.turns]
    text = None
    if exchanges:
        text = history_pieces(prompt, tok, exchanges) + next_turn_pieces(prompt, tok, question)
    seq = KVSequence(rt.lm, engine)
    try:
        yield from drive(Run(rt, question, seq=seq, turn=text), engine)
    finally:
        seq.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--engine", default="transformers")
    parser.add_argument("--max-tokens", type=int, default=48, help="token budget of a turn")
    args = parser.parse_args()

    from llmos_grammar.models import quiet_loading, set_threads
    from llmos_grammar.runtime.session import Session
    from llmos_grammar.spec.loader import load

    set_threads()
    quiet_loading()

    machine = load(ROOT / "examples" / "chat" / "spec.yaml")
    machine = replace(
        machine,
        engine=args.engine,
        budgets=replace(machine.budgets, max_tokens=args.max_tokens, wall_s=3600.0),
    )
    rows = []
    with Session(machine) as session:
        rt = session.rt
        engine = rt.engine()  # where the re-sent conversations go
        first_logits(rt, resend(session, engine, "warm up"))
        print(f"model {rt.lm.name}, engine {rt.engine_name}", file=sys.stderr)
        for turn, question in enumerate(QUESTIONS[: args.turns], 1):
            kept, again = [], []
            for _ in range(args.repeats):  # interleaved, so both see the same load
                again.append(first_logits(rt, resend(session, engine, question)))
                kept.append(first_logits(rt, session.stream(question)))  # rolled back
            fed = len(session.seq.ids)
            session.send(question)  # the turn for real: the conversation goes on
            total = session.turns[-1].result.prompt_ids
            rows.append(
                (
                    turn,
                    len(total),
                    len(total) - fed,
                    statistics.median(kept),
                    statistics.median(again),
                )
            )
            print(f"turn {turn}: {rows[-1]}", file=sys.stderr)
    head = ("turn", "prompt", "new", "session TTFT", "re-send TTFT", "ratio")
    print("{:>4} {:>7} {:>5} {:>13} {:>13} {:>6}".format(*head))
    for turn, prompt_len, new, kept_s, resend_s in rows:
        print(
            f"{turn:>4} {prompt_len:>7} {new:>5} {kept_s * 1000:>10.1f} ms "
            f"{resend_s * 1000:>10.1f} ms {resend_s / kept_s:>5.1f}x"
        )
    plot(rows, ROOT / "benchmarks" / "session_ttft.png")
    return 0


def plot(rows: list[tuple[int, int, int, float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    turns = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(turns, [r[4] * 1000 for r in rows], "o-", label="re-send the conversation")
    ax.plot(turns, [r[3] * 1000 for r in rows], "o-", label="session (KV cache kept)")
    ax.set_xlabel("turn")
    ax.set_ylabel("time to first token (ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    sys.exit(main())
