"""The trace viewer in a real browser (headless Chromium driven by Selenium): pages of real
runs of the calculator, chat and sqlite_qa examples and of an evaluation, an action output
that tries to be markup, and how long a 20,000-token page takes to open.

Skipped, with the reason, where Selenium, Chromium or its driver is missing. With
LLMOS_VIEWER_SCREENSHOTS=docs/images the pages' screenshots are saved there.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench_view import CHROMIUM, DRIVER, chromium, open_page, synthetic_trace
from llmos_grammar.runtime.events import (
    ActionFinished,
    Event,
    HealedEvent,
    InjectedEvent,
    TokenEvent,
    TransitionEvent,
)
from llmos_grammar.trace import Trace, read_trace
from llmos_grammar.viewer import run_html
from llmos_grammar.visible import visible
from tests.test_viewer import HOSTILE, as_trace, scripted

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "calculator": "What is 1000 minus 387?",
    "chat": "What is 17 times 23?",
    "sqlite_qa": "Which city does Alan Turing live in?",
}
SELECTORS = {
    "sampled": ".band-text .t.s",
    "forced": ".band-text .t.f",
    "injected": ".band-text .t.i",
    "healed": ".band-text .t.h",
}
SHOTS = os.environ.get("LLMOS_VIEWER_SCREENSHOTS")


def shown(path: Path) -> str:
    """A checkout path as the pages will show it: relative to the checkout when screenshots
    for the docs are taken (the pages are then made from the checkout), absolute otherwise."""
    return str(path.relative_to(ROOT)) if SHOTS else str(path)


def in_checkout() -> contextlib.AbstractContextManager[object]:
    """Make the pages from the checkout when screenshots are taken (see `shown`)."""
    return contextlib.chdir(ROOT) if SHOTS else contextlib.nullcontext()


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra has it)"
    for path in (CHROMIUM, DRIVER):
        if not Path(path).exists():
            return f"{path} is missing (setup.sh installs chromium and chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def count(driver: Any, selector: str) -> int:
    return int(
        driver.execute_script("return document.querySelectorAll(arguments[0]).length", selector)
    )


def screenshot(driver: Any, name: str) -> None:
    if SHOTS:
        driver.save_screenshot(str(Path(SHOTS) / f"viewer-{name}.png"))


def origin_counts(events: tuple[Event, ...] | list[Event]) -> dict[str, int]:
    """How many spans of each origin the trace's events make."""
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    return {
        "sampled": sum(not e.forced for e in tokens),
        "forced": sum(e.forced for e in tokens),
        "injected": sum(isinstance(e, InjectedEvent) for e in events),
        "healed": sum(isinstance(e, HealedEvent) for e in events),
    }


def band_texts(trace: Trace) -> list[tuple[str, str, str]]:
    """(state, trigger that entered it, its text) of each stretch between transitions."""
    first = next(e.state for e in trace.events if isinstance(e, TokenEvent | InjectedEvent))
    bands = [[first, "start", ""]]
    for event in trace.events:
        if isinstance(event, TransitionEvent):
            bands.append([event.target, event.trigger, ""])
        elif isinstance(event, TokenEvent | InjectedEvent):
            bands[-1][2] += visible(event.text)
    return [(s, t, x) for s, t, x in bands]


# ---- pages of real runs ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Trace]]:
    """Each example's page and trace. The calculator's through llmos-run --html --trace;
    chat and sqlite_qa through the same parts (run_header, EventLog, run_html) with a wall
    clock long enough for a loaded machine to reach their action."""
    from llmos_grammar.cli.main import main

    folder = tmp_path_factory.mktemp("pages")
    pages: dict[str, tuple[Path, Trace]] = {}
    spec = ROOT / "examples" / "calculator" / "spec.yaml"
    page, trace = folder / "calculator.html", folder / "calculator.jsonl"
    args = ["run", shown(spec), EXAMPLES["calculator"], "--engine", "transformers"]
    with in_checkout():
        assert main([*args, "--html", str(page), "--trace", str(trace), "--no-color"]) == 0
        pages["calculator"] = (page, read_trace(trace))
        for name in ("chat", "sqlite_qa"):
            pages[name] = page_of(name, folder)
    return pages


def page_of(name: str, folder: Path) -> tuple[Path, Trace]:
    """An example's run made through run_header, EventLog and run_html, with a wall clock
    long enough for a loaded machine to reach its action."""
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec import load
    from llmos_grammar.viewer import run_header
    from llmos_grammar.viewer.record import EventLog

    machine = load(shown(ROOT / "examples" / name / "spec.yaml"))
    machine = replace(machine, budgets=replace(machine.budgets, wall_s=900))
    with Runtime(machine, engine="transformers", details=True) as runtime:
        log = EventLog(run_header(machine, EXAMPLES[name], runtime))
        for event in runtime.stream(EXAMPLES[name]):
            log.add(event)
    page = folder / f"{name}.html"
    page.write_text(run_html(log.trace()), encoding="utf-8")
    return page, log.trace()


@pytest.mark.model
@pytest.mark.parametrize("name", EXAMPLES)
def test_token_spans_of_each_origin_match_the_trace(
    browser: Any, real_pages: dict[str, tuple[Path, Trace]], name: str
) -> None:
    page, trace = real_pages[name]
    open_page(browser, page)
    expected = origin_counts(trace.events)
    assert expected["sampled"] > 0 and expected["forced"] > 0
    assert {origin: count(browser, css) for origin, css in SELECTORS.items()} == expected
    # every sampled token of the run carries its step, and the page says so
    sampled = [e for e in trace.events if isinstance(e, TokenEvent) and not e.forced]
    assert all(e.detail is not None for e in sampled)
    assert "no step details" not in browser.find_element("id", "run").text


@pytest.mark.model
@pytest.mark.parametrize("name", EXAMPLES)
def test_state_bands_and_triggers_are_where_the_trace_says(
    browser: Any, real_pages: dict[str, tuple[Path, Trace]], name: str
) -> None:
    page, trace = real_pages[name]
    open_page(browser, page)
    shown = browser.execute_script(
        "return [...document.querySelectorAll('#run section.band')].map(b => ["
        "b.dataset.state, (b.querySelector('.trigger') || {}).textContent || '',"
        "b.querySelector('.band-text').textContent])"
    )
    assert [tuple(b) for b in shown] == band_texts(trace)
    moves = [e for e in trace.events if isinstance(e, TransitionEvent)]
    assert len(shown) == len(moves) + 1 and len(moves) >= 2
    # the diagram marks the transitions the run took
    taken = {
        tuple(x.split(">"))
        for x in browser.execute_script(
            "return [...document.querySelectorAll('g.edge.taken')].map(g => g.dataset.edge)"
        )
    }
    assert taken == {(e.source, e.target) for e in moves}


@pytest.mark.model
@pytest.mark.parametrize("name", EXAMPLES)
def test_an_action_card_opens_on_click_and_shows_the_real_output(
    browser: Any, real_pages: dict[str, tuple[Path, Trace]], name: str
) -> None:
    page, trace = real_pages[name]
    finished = [e for e in trace.events if isinstance(e, ActionFinished)]
    assert finished, f"the {name} run reached no action"
    open_page(browser, page)
    card = browser.find_element("css selector", "details.card")
    assert card.get_attribute("open") is None  # folded until clicked
    result = finished[0].result
    outputs = {key: getattr(result, key) for key in ("stdout", "stderr", "rows")}
    outputs = {key: text for key, text in outputs.items() if text}
    assert outputs, "the action printed nothing"
    boxes = {key: card.find_element("css selector", f"pre.{key}") for key in outputs}
    assert not any(box.is_displayed() for box in boxes.values())
    card.find_element("tag name", "summary").click()
    assert card.get_attribute("open") is not None
    for key, box in boxes.items():
        assert box.is_displayed() and box.get_attribute("textContent") == visible(outputs[key])
    if name == "calculator":
        assert result.stdout == "613\n"
    layers = card.find_elements("css selector", ".layers .chip")
    assert [x.text for x in layers] == list(result.limits.get("layers", []))
    screenshot(browser, name)


@pytest.mark.model
def test_hovering_a_sampled_token_shows_its_step(
    browser: Any, real_pages: dict[str, tuple[Path, Trace]]
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    page, trace = real_pages["calculator"]
    open_page(browser, page)
    sampled = [e for e in trace.events if isinstance(e, TokenEvent) and not e.forced]
    index = next(i for i, e in enumerate(sampled) if e.state == "code")
    detail = sampled[index].detail
    assert detail is not None and detail.allowed is not None
    span = browser.find_elements("css selector", SELECTORS["sampled"])[index]
    ActionChains(browser).move_to_element(span).perform()
    tip = browser.find_element("id", "tip")
    deadline = time.monotonic() + 5
    while not tip.is_displayed() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = tip.text
    assert f"mask: {detail.allowed} of {trace.header['vocab_size']} tokens allowed" in text
    assert f"p = {100 * detail.p:.1f}%" in text or f"p = {100 * detail.p:.3f}%" in text
    assert len(tip.find_elements("css selector", "tr")) == len(detail.top)
    assert tip.find_element("css selector", "tr.chosen").text.startswith(
        json.dumps(sampled[index].text)
    )
    screenshot(browser, "hover")


# ---- an evaluation ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eval_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """llmos-eval --html on four calculator tasks, with its --json document."""
    from llmos_grammar.cli.main import main

    folder = tmp_path_factory.mktemp("eval")
    page, doc = folder / "report.html", folder / "report.json"
    spec = ROOT / "examples" / "calculator" / "spec.yaml"
    tasks = ROOT / "examples" / "calculator" / "tasks.jsonl"
    args = ["eval", shown(spec), "--tasks", shown(tasks), "--limit", "4", "--wall-s", "900"]
    args += ["--engine", "transformers", "--no-progress", "--html", str(page), "--json", str(doc)]
    with in_checkout():
        assert main(args) == 0
    return page, json.loads(doc.read_text())


@pytest.mark.model
def test_the_eval_table_filters_by_outcome_and_opens_each_trace(
    browser: Any, eval_page: tuple[Path, dict[str, Any]]
) -> None:
    page, doc = eval_page
    open_page(browser, page)
    outcomes = [r["outcome"] for r in doc["results"]]
    rows = browser.find_elements("css selector", "table.tasks tbody tr")
    assert [r.get_attribute("data-outcome") for r in rows] == outcomes
    answers = [
        r.find_element("css selector", "td.answer").get_attribute("textContent") for r in rows
    ]
    assert answers == [visible(r["samples"][0]["answer"]) for r in doc["results"]]
    buttons = browser.find_elements("css selector", ".filters button")
    shown_counts = {b.get_attribute("data-outcome"): b.text for b in buttons}
    assert shown_counts == {"": f"all {len(outcomes)}"} | {
        name: f"{name} {n}" for name, n in Counter(outcomes).items()
    }
    for button in buttons:
        button.click()
        wanted = button.get_attribute("data-outcome")
        visible_rows = [r.get_attribute("data-row") for r in rows if r.is_displayed()]
        assert visible_rows == [str(i) for i, o in enumerate(outcomes) if wanted in ("", o)]
    figures = browser.find_element("css selector", ".evaluation .figures").text
    assert "pass@1" in figures
    buttons[0].click()
    rows[1].click()
    deadline = time.monotonic() + 10
    while browser.execute_script("return document.body.getAttribute('data-ready')") != "trace":
        assert time.monotonic() < deadline, "the row's trace was not drawn"
        time.sleep(0.05)
    panel = browser.find_element("id", "panel")
    assert panel.is_displayed() and "task 2" in panel.find_element("tag name", "h2").text
    bands = panel.find_elements("css selector", "section.band")
    assert bands and bands[0].get_attribute("data-state") == "code"
    assert count(browser, "#panel .t.s") > 0 and count(browser, "#panel details.card") >= 1
    screenshot(browser, "eval")


# ---- no model needed -------------------------------------------------------------------------
def test_an_action_output_that_is_markup_stays_text(browser: Any, tmp_path: Path) -> None:
    page = tmp_path / "hostile.html"
    page.write_text(run_html(as_trace(scripted(details=True, stdout=HOSTILE))))
    open_page(browser, page)
    assert browser.execute_script("return window.pwned") is None
    assert count(browser, "img") == 0 and count(browser, "script") == 2
    card = browser.find_element("css selector", "details.card")
    card.find_element("tag name", "summary").click()
    box = card.find_element("css selector", "pre.stdout")
    assert box.get_attribute("textContent") == HOSTILE
    injected = browser.find_element("css selector", SELECTORS["injected"])
    assert HOSTILE in injected.get_attribute("textContent")
    assert browser.execute_script("return window.pwned") is None


def test_a_20000_token_page_opens_and_reports_its_time(
    browser: Any, tmp_path: Path, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The time is reported, not asserted: benchmarks/bench_view.py checks it (under 2 s)."""
    trace = synthetic_trace(20_000)
    page = tmp_path / "big.html"
    page.write_text(run_html(trace))
    timing = open_page(browser, page)
    expected = origin_counts(trace.events)
    assert expected["sampled"] >= 20_000
    assert {origin: count(browser, css) for origin, css in SELECTORS.items()} == expected
    moves = sum(isinstance(e, TransitionEvent) for e in trace.events)
    assert count(browser, "#run section.band") == moves + 1
    record_property("open_s", timing["open"])
    with capsys.disabled():
        print(
            f"\n20,000-token page: open {timing['open']:.3f} s, first spans "
            f"{timing['first']:.3f} s, wall {timing['wall']:.3f} s"
        )
