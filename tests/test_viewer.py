"""The trace viewer without a browser: step details recorded only when asked, one typed trace
reader that opens the traces of earlier releases, the page's data, its escaping and its CSP."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from pathlib import Path

import pytest

from llmos_grammar.errors import TraceError
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.event_json import event_from_json, event_to_json
from llmos_grammar.runtime.events import (
    ActionFinished,
    DoneEvent,
    Event,
    HealedEvent,
    InjectedEvent,
    TokenEvent,
    TransitionEvent,
)
from llmos_grammar.trace import Trace, TraceWriter, read_trace
from llmos_grammar.viewer import run_html
from llmos_grammar.viewer.page import data_json
from llmos_grammar.viewer.run_view import run_view
from tests.test_runtime import calc_machine, run
from tests.test_runtime_helpers import FakeRunner

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "viewer_data"
PIECES = ["Sure", " [", "CO", "4", "2", ")", " Done", "."]
HOSTILE = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned=2">&amp;'


@functools.cache
def _scripted(details: bool, stdout: str) -> tuple[Event, ...]:
    _, events, _ = run(
        calc_machine(), PIECES, FakeRunner(ActionResult(stdout=stdout)), details=details
    )
    return tuple(events)


def scripted(details: bool, stdout: str = "42\n") -> list[Event]:
    """The calculator machine on the tiny model, steered to split `[CODE]` across tokens."""
    return list(_scripted(details, stdout))


def as_trace(events: list[Event]) -> Trace:
    header: dict[str, object] = {"kind": "header", "llmos_trace": 2, "task": "task"}
    return Trace(header, tuple(events), tuple(0.01 * i for i in range(len(events))))


def test_a_normal_run_records_no_details() -> None:
    events = scripted(details=False)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert tokens and all(e.detail is None for e in tokens)
    assert not any(isinstance(e, HealedEvent) for e in events)
    # what a normal run writes is what 0.2 wrote: no `detail` key on any token line
    assert all("detail" not in event_to_json(e) for e in tokens)


def test_details_record_each_sampled_step_and_change_nothing_else() -> None:
    plain, detailed = scripted(details=False), scripted(details=True)
    sampled = [e for e in detailed if isinstance(e, TokenEvent) and not e.forced]
    assert [e.text for e in sampled] == ["Sure", " [", "CO", "4", "2", ")", " Done", "."]
    for event in sampled:
        assert event.detail is not None
        assert event.detail.top[0].token_id == event.token_ids[0]  # greedy: the top one
        assert 0.99 <= event.detail.p <= 1.0 and event.detail.step_s > 0
    masks = {e.state: e.detail.allowed for e in sampled if e.detail is not None}
    assert masks["talk"] is None  # free text: no mask
    code_mask = masks["code"]
    assert code_mask is not None and 1 <= code_mask <= 20  # digits and ")" only
    forced = [e for e in detailed if isinstance(e, TokenEvent) and e.forced]
    assert forced and all(e.detail is None for e in forced)
    # the run itself is the same: same text, ids and mask of chosen tokens
    done_plain, done_detailed = plain[-1], detailed[-1]
    assert isinstance(done_plain, DoneEvent) and isinstance(done_detailed, DoneEvent)
    assert done_plain.result.text == done_detailed.result.text
    assert done_plain.result.completion_ids == done_detailed.result.completion_ids
    assert done_plain.result.chosen == done_detailed.result.chosen


def test_the_split_trigger_is_healed_and_the_event_says_how() -> None:
    events = scripted(details=True)
    healed = [e for e in events if isinstance(e, HealedEvent)]
    assert len(healed) == 1
    heal = healed[0]
    # " [" and "CO" were sampled; " [CODE]" went into the context tokenized afresh
    assert heal.state == "talk" and heal.text == " [CODE]"
    assert len(heal.dropped) == 2 and heal.ids != heal.dropped
    shown = "".join(e.text for e in events[: events.index(heal)] if isinstance(e, TokenEvent))
    assert shown.endswith(heal.text)
    transition = events[events.index(heal) + 1]
    assert isinstance(transition, TransitionEvent) and transition.trigger == "[CODE]"


def test_events_with_details_read_back_as_written(tmp_path: Path) -> None:
    events = scripted(details=True)
    for event in events:
        assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, {"task": "task"}) as writer:
        for event in events:
            writer.write(event)
    assert read_trace(path).events == tuple(events)


@pytest.mark.parametrize(
    ("detail", "message"),
    [
        ({"p": "high"}, "`detail.p` must be a number"),
        ({"p": 0.5, "allowed": 1.5}, "`detail.allowed` must hold integers"),
        ({"p": 0.5, "top": [[1, "a"]]}, r"\[id, text, p\] triples"),
    ],
)
def test_a_bad_detail_is_a_trace_error(detail: dict[str, object], message: str) -> None:
    record = {"kind": "token", "state": "s", "text": "a", "token_ids": [1], "detail": detail}
    with pytest.raises(TraceError, match=message):
        event_from_json(record)


@pytest.mark.parametrize("release", ["0.1", "0.2"])
def test_traces_of_earlier_releases_open(release: str) -> None:
    trace = read_trace(OLD / f"calculator_{release}.jsonl")
    assert trace.header["llmos_trace"] == 1
    done = trace.events[-1]
    assert isinstance(done, DoneEvent) and done.result.stop_reason == "final"
    assert trace.transcript == done.result.text and "156" in trace.transcript
    finished = next(e for e in trace.events if isinstance(e, ActionFinished))
    assert finished.result.stdout == "156\n"
    view = run_view(trace)
    sampled = sum(isinstance(e, TokenEvent) and not e.forced for e in trace.events)
    assert view.counts()["sampled"] == sampled and view.counts()["injected"] == 1
    assert not view.to_json()["meta"]["details"]  # type: ignore[index]
    assert "<!DOCTYPE html>" in run_html(trace)


def test_a_trace_of_a_later_version_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('\n{"kind": "header", "llmos_trace": 3}\n')
    with pytest.raises(TraceError, match="trace version 3; this reads 1, 2") as info:
        read_trace(path)
    assert info.value.location is not None and info.value.location.line == 2


def test_the_view_has_a_span_per_event_and_a_band_per_transition() -> None:
    events = scripted(details=True)
    view = run_view(as_trace(events))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert view.counts() == {
        "sampled": sum(not e.forced for e in tokens),
        "forced": sum(e.forced for e in tokens),
        "injected": sum(isinstance(e, InjectedEvent) for e in events),
        "healed": 1,
    }
    moves = [e for e in events if isinstance(e, TransitionEvent)]
    assert [(b.source, b.state, b.trigger) for b in view.bands[1:]] == [
        (e.source, e.target, e.trigger) for e in moves
    ]
    assert view.bands[0].state == "talk" and view.bands[0].trigger == "start"
    # the healed text " [CODE]" lies in the spans " [", "CO" and "DE]" before the marker
    assert [view.texts[i] for i in sorted(view.healed_tail)] == [" [", "CO", "DE]"]
    run_band = next(b for b in view.bands if b.state == "run")
    assert run_band.card == 0 and view.cards[0]["stdout"] == "42\n"
    assert view.cards[0]["input"] == "print(42)\n" and view.cards[0]["status"] == "exit 0"


def test_untrusted_text_stays_data(tmp_path: Path) -> None:
    events = scripted(details=True, stdout=HOSTILE + "\x1b[2J\u202e")
    page = run_html(as_trace(events))
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts == ['<script type="application/json" id="llmos-data">', "<script>"]
    assert "window.pwned" in page and "<img" not in page  # the payload is there, as data
    data = page.split('id="llmos-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "&" not in data
    shown = json.loads(data)["run"]["cards"][0]["stdout"]
    assert shown == HOSTILE + "\\x1b[2J\\u202e"  # control characters made visible


def test_the_policy_allows_only_the_page_own_script_and_style() -> None:
    page = run_html(as_trace(scripted(details=False)))
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    script = page.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    style = page.split("<style>", 1)[1].split("</style>", 1)[0]
    for kind, text in (("script-src", script), ("style-src", style)):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{kind} 'sha256-{digest}'" in policy.group(1)
    assert "default-src 'none'" in policy.group(1)
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


def test_data_json_escapes_what_could_end_a_script() -> None:
    text = data_json({"a": "</script><!-- & \u2028 \u2029"})
    assert json.loads(text) == {"a": "</script><!-- & \u2028 \u2029"}
    assert not set("<>&\u2028\u2029") & set(text)


def test_the_llmos_view_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmos_grammar.cli.main import main

    out = tmp_path / "run.html"
    assert main(["view", str(OLD / "calculator_0.2.jsonl"), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["view", str(tmp_path / "none.jsonl")]) == 2
    assert "no such trace file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "header", "llmos_trace": 1}\n{"kind": "user", "text": "hi"}\n')
    assert main(["view", str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "not an event: kind 'user'" in err
    assert "Traceback" not in err


def test_the_eval_recorder_keeps_each_task_voted_trace() -> None:
    from llmos_grammar.errors import Location
    from llmos_grammar.eval.runner import Sample, TaskResult
    from llmos_grammar.eval.scorers import Score
    from llmos_grammar.eval.tasks import Task
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.runtime.vote import majority
    from llmos_grammar.viewer.record import TraceRecorder
    from tests.test_runtime_helpers import Script, tiny_model

    runner = FakeRunner(ActionResult(stdout="42\n"))
    script = Script(PIECES)
    machine = calc_machine()
    with Runtime(  # type: ignore[arg-type]
        machine, tiny_model(), runner=runner, logits_processors=[script], details=True
    ) as runtime:
        recorder = TraceRecorder(runtime)
        events = [item.event for item in recorder.stream_batch(["task"])]
    trace = recorder.finished[("task", 0)][0]
    assert trace.events == tuple(events) and trace.header["task"] == "task"
    assert trace.header["graph"] and trace.header["llmos_trace"] == 2
    sample = Sample(Score(True, "solved", "42"), "42")
    task = Task("task", "answer", Location("t.jsonl", 1), answer=42)
    other = Task("never ran", "answer", Location("t.jsonl", 2), answer=1)
    results = [
        TaskResult(task, (sample,), majority(["42"])),
        TaskResult(other, (sample,), majority(["1"])),
    ]
    assert recorder.voted_traces(results) == [trace, None]
