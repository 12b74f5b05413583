"""How fast a large run's page opens: a 20,000-token trace in headless Chromium, under 2 s.

Usage: python benchmarks/bench_view.py [--tokens 20000] [--runs 3] [--limit-s 2.0]
                                       [--keep run.html]

The trace is synthetic but shaped like a real one (`synthetic_trace`): text and grammar
states in turn, a trigger split across tokens and healed, an action with its output
injected, and every sampled token with its step details (five alternatives each), which
is the heaviest a page gets. "open" is the time from the navigation's start to the last
token span in the page (`window.llmosTiming.done`); "first" is when the first chunk of
spans shows. Exit status 1 when the median open time is over the limit.

Needs Chromium and its driver (/usr/bin/chromium, /usr/bin/chromedriver) and Selenium.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llmos_grammar.results import ActionResult  # noqa: E402
from llmos_grammar.runtime.events import (  # noqa: E402
    ActionFinished,
    ActionStarted,
    Alternative,
    DoneEvent,
    Event,
    HealedEvent,
    InjectedEvent,
    Result,
    Stats,
    StepDetail,
    TokenEvent,
    TransitionEvent,
)
from llmos_grammar.trace import TRACE_VERSION, Trace  # noqa: E402

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WORDS = ["The", " answer", " is", " to", " compute", " the", " sum", " of", " all", " values"]
CODE = ["total", " =", " sum", "(", "range", "(", "1", "0", "1", "))", "\n", "print", "(", "x", ")"]
GRAPH = {
    "start": "talk",
    "nodes": [
        ["talk", "text", ["talk", "text"]],
        ["code", "grammar", ["code", "grammar: python.lark", "close [/CODE]"]],
        ["run", "action", ["run", "action: python (python)"]],
        ["end", "final", ["end", "final"]],
    ],
    "edges": [["talk", "code", "[CODE]"], ["talk", "end", "eos"], ["code", "run", "[/CODE]"]]
    + [["run", "talk", "ok"]],
}


def _sampled(state: str, text: str, i: int, masked: bool) -> TokenEvent:
    top = tuple(Alternative(100 + i + k, f"{text}{k or ''}", 0.6 / (k + 1)) for k in range(5))
    detail = StepDetail(0.6, 40 + i % 900 if masked else None, top, 0.012)
    return TokenEvent(state, text, (100 + i,), detail=detail)


def synthetic_trace(tokens: int = 20_000) -> Trace:
    """A trace of `tokens` sampled tokens, every one with its step details."""
    events: list[Event] = []
    n = cycles = 0
    while n < tokens:
        for _ in range(min(60, tokens - n)):
            events.append(_sampled("talk", WORDS[n % len(WORDS)], n, False))
            n += 1
        if n >= tokens:
            break
        events += [
            _sampled("talk", " [", n, False),
            _sampled("talk", "CO", n + 1, False),
            TokenEvent("talk", "DE]", (), forced=True),
            HealedEvent("talk", " [CODE]", (100 + n, 101 + n), (933, 33208, 77)),
            TransitionEvent("talk", "code", "[CODE]"),
            TokenEvent("code", "\n", (), forced=True),
        ]
        n += 2
        for k in range(min(40, max(tokens - n, 0))):
            events.append(_sampled("code", CODE[k % len(CODE)], n, True))
            n += 1
        output = f"[OUTPUT]\n{cycles * 5050}\n[/OUTPUT]\n"
        result = ActionResult(stdout=f"{cycles * 5050}\n", duration_s=0.08, limits={"layers": []})
        events += [
            TokenEvent("code", "[/CODE]", (75, 31, 33208, 77), forced=True),
            TransitionEvent("code", "run", "[/CODE]"),
            ActionStarted("run", "python", "total = sum(range(101))\nprint(x)\n"),
            ActionFinished("run", "python", result),
            InjectedEvent("run", output, 9),
            TransitionEvent("run", "talk", "ok"),
        ]
        cycles += 1
    events.append(TransitionEvent("talk", "end", "eos"))
    stats = Stats(
        prompt_tokens=200, generated_tokens=n, forced_tokens=cycles * 20, forward_passes=n
    )
    text = "".join(e.text for e in events if isinstance(e, TokenEvent | InjectedEvent))
    result = Result(text, "end", "final", "reached final state 'end'", (), (), stats)
    events.append(DoneEvent(result))
    header: dict[str, object] = {
        "kind": "header",
        "llmos_trace": TRACE_VERSION,
        "spec": "synthetic/spec.yaml",
        "task": f"a synthetic run of {tokens} sampled tokens",
        "model": "synthetic",
        "engine": "none",
        "vocab_size": 49152,
        "graph": GRAPH,
    }
    return Trace(header, tuple(events), tuple(0.01 * i for i in range(len(events))))


def chromium():  # type: ignore[no-untyped-def]
    """A headless Chromium driven by Selenium (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def open_page(driver, path: Path, deadline_s: float = 60.0) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Load `path` and wait until the page says it is drawn; its timings in seconds."""
    started = time.perf_counter()
    driver.get(path.resolve().as_uri())
    end = started + deadline_s
    while not driver.execute_script("return document.body.getAttribute('data-ready')"):
        if time.perf_counter() > end:
            raise TimeoutError(f"{path} was not drawn within {deadline_s:g} s")
        time.sleep(0.02)
    wall = time.perf_counter() - started
    timing = driver.execute_script("return window.llmosTiming")
    return {"open": timing["done"] / 1000, "first": timing["first"] / 1000, "wall": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit-s", type=float, default=2.0)
    parser.add_argument("--keep", metavar="FILE", help="also write the page here")
    args = parser.parse_args()
    from llmos_grammar.viewer import run_html

    started = time.perf_counter()
    page = run_html(synthetic_trace(args.tokens))
    built = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        path = Path(args.keep) if args.keep else Path(folder) / "run.html"
        path.write_text(page, encoding="utf-8")
        print(f"{args.tokens} tokens: page {len(page) / 1e6:.1f} MB, built in {built:.2f} s")
        driver = chromium()
        try:
            runs = [open_page(driver, path) for _ in range(args.runs)]
            spans = driver.execute_script("return document.querySelectorAll('.t.s').length")
        finally:
            driver.quit()
    for i, r in enumerate(runs, 1):
        first, wall = r["first"], r["wall"]
        print(f"run {i}: open {r['open']:.3f} s, first chunk {first:.3f} s, wall {wall:.3f} s")
    median = statistics.median(r["open"] for r in runs)
    verdict = "ok" if median < args.limit_s else "over the limit"
    print(
        f"median open {median:.3f} s (limit {args.limit_s:g} s): {verdict}; {spans} sampled spans"
    )
    return 0 if median < args.limit_s and spans >= args.tokens else 1


if __name__ == "__main__":
    sys.exit(main())
