"""Events written as JSON read back into the same typed classes; bad trace lines say where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmos_grammar.errors import TraceError
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime import (
    ActionFinished,
    DoneEvent,
    Event,
    TokenEvent,
    event_from_json,
    event_to_json,
)
from llmos_grammar.trace import TraceWriter, read_trace
from tests.test_runtime import calc_machine, run
from tests.test_runtime_helpers import FakeRunner


def a_run() -> list[Event]:
    """Every kind of event: tokens (forced and sampled), transitions, an action, an injection."""
    action = ActionResult(stdout="42\n", unenforced=("cgroup",), limits={"timeout_s": 5})
    _, events, _ = run(
        calc_machine(), ["Sure", " [", "CO", "4", "2", ")", " ok"], FakeRunner(action)
    )
    return events


def test_every_event_reads_back_as_written() -> None:
    events = a_run()
    kinds = {type(e).__name__ for e in events}
    assert {"TokenEvent", "TransitionEvent", "ActionStarted", "ActionFinished"} <= kinds
    assert {"InjectedEvent", "DoneEvent"} <= kinds
    for event in events:
        line = json.dumps(event_to_json(event))
        assert event_from_json(json.loads(line)) == event, line
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.result.actions[0].result.unenforced == ("cgroup",)


def test_a_trace_reads_back_into_the_run_events(tmp_path: Path) -> None:
    events = a_run()
    with TraceWriter(tmp_path / "t.jsonl", {"spec": "calc"}) as trace:
        for event in events:
            trace.write(event)
    read = read_trace(tmp_path / "t.jsonl")
    assert read.events == tuple(events)
    assert read.header["spec"] == "calc" and len(read.times) == len(events)
    assert all(a <= b for a, b in zip(read.times, read.times[1:], strict=False))
    done = events[-1]
    assert isinstance(done, DoneEvent) and read.transcript == done.result.text


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"kind": "tokens"}, "not an event: kind 'tokens'"),
        (
            {"kind": "token", "state": "s", "text": 3, "token_ids": []},
            "`text` must be a str, not int",
        ),
        ({"kind": "token", "state": "s", "text": "x", "token_ids": [1, True]}, "integers"),
        ({"kind": "action_finished", "state": "s", "action": "a"}, "`result` must hold objects"),
        ({"kind": "done", "result": {"text": "x"}}, "`final_state` must be a str"),
    ],
)
def test_a_bad_record_is_a_trace_error(record: dict[str, object], message: str) -> None:
    with pytest.raises(TraceError, match=message):
        event_from_json(record)


def test_a_bad_trace_line_names_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as trace:
        trace.write(TokenEvent("s", "hi", (1,)))
    path.write_text(path.read_text() + '{"kind": "transition", "source": "s"}\n')
    with pytest.raises(TraceError) as info:
        read_trace(path)
    assert info.value.location is not None and info.value.location.line == 3
    assert "`target` must be a str" in str(info.value)
    path.write_text('{"kind": "token"}\n')
    with pytest.raises(TraceError, match="not a trace: no header line first"):
        read_trace(path)


def test_an_action_result_keeps_its_fields() -> None:
    result = ActionResult(stderr="boom", exit_code=None, timed_out=True, limit_hit="timeout")
    event = ActionFinished("run", "python", result)
    assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event
