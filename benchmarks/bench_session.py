"""Time to first token in a session (KV cache kept) against re-sending the whole conversation.

A 10-turn conversation with the chat example on the default model. At each
turn the session feeds only the new turn's tokens; a chat frontend re-sends
the whole conversation to a fresh cache. Both are timed the same way (from
the start of the turn to the first next-token logits), each the median of
`--repeats` tries (the session's turn is undone and sent again). Prints the
ratio at turns 1, 5 and 10 side by side and draws benchmarks/session_ttft.png.

    python benchmarks/bench_session.py [--turns 10] [--repeats 3] [--engine transformers]
"""

from __future__ import annotations

import argparse
import statistics
import sys
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


def resend_ttft(session: Any, question: str) -> float:
    """A fresh cache fed the whole conversation and the new question: seconds to first logits."""
    from llmos_grammar.runtime.drive import drive
    from llmos_grammar.runtime.kv import KVSequence
    from llmos_grammar.runtime.loop import Run
    from llmos_grammar.runtime.prompt import history_text, next_turn_text

    rt, prompt, tok = session.rt, session.machine.prompt, session.rt.lm.tokenizer
    exchanges = [(t.user, t.reply) for t in session.turns]
    text = None
    if exchanges:
        text = history_text(prompt, tok, exchanges) + next_turn_text(prompt, tok, question)
    engine = rt.new_engine()
    seq = KVSequence(rt.lm, engine)
    run = Run(rt, question, seq=seq, turn=text)
    events = drive(run, engine)
    for _ in events:
        if run.first_token_at is not None:
            break
    events.close()
    seq.close()
    assert run.first_token_at is not None
    return run.first_token_at - run.t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine", default="transformers")
    parser.add_argument("--max-tokens", type=int, default=64, help="token budget of a turn")
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
        resend_ttft(session, "warm up")
        print(f"model {session.rt.lm.name}, engine {session.rt.engine_name}", file=sys.stderr)
        for turn, question in enumerate(QUESTIONS[: args.turns], 1):
            resend = [resend_ttft(session, question) for _ in range(args.repeats)]
            kept = []
            for rep in range(args.repeats):
                if rep:
                    session.undo()
                kept.append(session.send(question).stats.time_to_first_token_s)
            rows.append(
                (turn, session.context_tokens, statistics.median(kept), statistics.median(resend))
            )
            print(f"turn {turn}: {rows[-1]}", file=sys.stderr)
    print(f"{'turn':>4} {'context':>8} {'session TTFT':>13} {'re-send TTFT':>13} {'ratio':>6}")
    for turn, context, kept_s, resend_s in rows:
        print(
            f"{turn:>4} {context:>8} {kept_s * 1000:>10.1f} ms {resend_s * 1000:>10.1f} ms "
            f"{resend_s / kept_s:>5.1f}x"
        )
    plot(rows, ROOT / "benchmarks" / "session_ttft.png")
    return 0


def plot(rows: list[tuple[int, int, float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    turns = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(turns, [r[3] * 1000 for r in rows], "o-", label="re-send the conversation")
    ax.plot(turns, [r[2] * 1000 for r in rows], "o-", label="session (KV cache kept)")
    ax.set_xlabel("turn")
    ax.set_ylabel("time to first token (ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    sys.exit(main())
