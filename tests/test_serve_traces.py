"""`llmos serve --traces N`: the last N request choices' traces, viewable at /traces/ID.

The store on its own (the last N by count and by bytes, random ids, threads at once);
the scheduler recording each choice's events (step details only when asked, nothing at
all without a store, a cancelled choice's trace kept too); and real servers on a tiny
model (`tests/serve_traces_support.py`, `llmos serve`'s own flags and code path) and on
the default model with the calculator spec: three requests with --traces 2 keep the last
two, the first is a 404; a page shows the reply's text escaped and the action's card; the
JSONL reads back as a trace; every route needs the key; without --traces there are no
routes and no trace is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from llmos_grammar.cli.serve import add_arguments, option_problem, trace_store
from llmos_grammar.runtime.events import ActionFinished, DoneEvent, TokenEvent
from llmos_grammar.serve import sched_loop, traces_record
from llmos_grammar.serve.models import served_on
from llmos_grammar.serve.sched_host import RowHost
from llmos_grammar.serve.scheduler import BatchScheduler
from llmos_grammar.serve.traces import TRACE_ID, KeptTrace, TraceStore, new_id, trace_jsonl
from llmos_grammar.serve.traces_http import index_html
from llmos_grammar.trace import Trace, read_trace
from tests.serve_http_support import Running
from tests.serve_sched_support import action_machine, ask, chat, read, wait_until
from tests.serve_traces_support import CODE, PRINTED
from tests.test_runtime_batch import varied_model

KEY = "k3y-for-traces"
AUTH = {"Authorization": f"Bearer {KEY}"}
SUPPORT = ("-m", "tests.serve_traces_support")
DATA = re.compile(r'<script type="application/json" id="llmos-data">(.*?)</script>', re.S)


def kept(trace_id: str, size: int, task: str = "t") -> KeptTrace:
    return KeptTrace(trace_id, "calc", 0, 0.0, "stop", task, b"x" * size)


# ---- the flags ---------------------------------------------------------------------------


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["spec.yaml", *argv])


def test_the_flags_are_checked_and_no_traces_means_no_store() -> None:
    assert option_problem(options(), None) is None and trace_store(options()) is None
    assert "--traces must be 0" in str(option_problem(options("--traces", "-1"), None))
    assert "give --traces N" in str(option_problem(options("--traces-details"), None))
    too_small = options("--traces", "2", "--traces-mb", "0")
    assert "--traces-mb must be above 0" in str(option_problem(too_small, None))
    store = trace_store(options("--traces", "3", "--traces-details", "--traces-mb", "1"))
    assert store is not None
    assert (store.keep, store.max_bytes, store.details) == (3, 1024 * 1024, True)


# ---- the store ---------------------------------------------------------------------------


def test_the_store_keeps_the_last_n_and_the_oldest_leave_first() -> None:
    store = TraceStore(2)
    ids = [new_id() for _ in range(3)]
    for trace_id in ids:
        assert store.put(kept(trace_id, 10))
    assert store.get(ids[0]) is None
    assert [k.id for k in store.listed()] == [ids[2], ids[1]]  # the newest first
    assert len(store) == 2 and store.bytes == 20


def test_the_store_is_bounded_by_bytes_and_refuses_a_trace_larger_than_all() -> None:
    store = TraceStore(10, max_bytes=100)
    first, second, third = new_id(), new_id(), new_id()
    assert store.put(kept(first, 60)) and store.put(kept(second, 30))
    assert store.put(kept(third, 50))  # 140 bytes: the oldest leaves
    assert store.get(first) is None and store.get(second) is not None
    assert store.bytes == 80
    assert not store.put(kept(new_id(), 101))
    assert [k.id for k in store.listed()] == [third, second]


def test_ids_are_random_and_only_well_formed_ids_are_looked_up() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(TRACE_ID.fullmatch(i) for i in ids)
    # not a counter: neighbours share no long common prefix
    assert max(len(_common_prefix(a, b)) for a, b in zip(ids, ids[1:], strict=False)) < 8
    store = TraceStore(1)
    store.put(kept(ids[0], 1))
    for bad in ("", "../" + ids[0], ids[0] + "x", ids[0].lower() + "!", "0"):
        assert store.get(bad) is None


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_threads_put_and_read_at_once_and_the_bounds_hold() -> None:
    store = TraceStore(16, max_bytes=16 * 50)
    errors: list[str] = []

    def writer() -> None:
        for i in range(300):
            store.put(kept(new_id(), 1 + i % 90))

    def reader() -> None:
        for _ in range(300):
            listed = store.listed()
            if len(listed) > 16 or sum(k.size for k in listed) > 16 * 50:
                errors.append(f"{len(listed)} traces, {sum(k.size for k in listed)} bytes")
            for k in listed[:2]:
                store.get(k.id)

    threads = [threading.Thread(target=f) for f in (writer, writer, writer, reader, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    listed = store.listed()
    assert 0 < len(listed) <= 16 and store.bytes == sum(k.size for k in listed) <= 16 * 50


def test_the_index_shows_untrusted_text_escaped() -> None:
    store = TraceStore(2)
    trace_id = new_id()
    store.put(kept(trace_id, 5, task="<img src=x onerror=alert(1)>\x1b[2J"))
    page = index_html(store.listed(), store)
    assert "<img" not in page and "\x1b" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;\\x1b[2J" in page
    assert f'<a href="/traces/{trace_id}">' in page


# ---- the scheduler records each choice (tiny model, no HTTP) --------------------------------


def scheduler(store: TraceStore | None) -> BatchScheduler:
    machines = [
        action_machine("calc", CODE),
        action_machine("sleep", "import time\ntime.sleep(30)\n"),
    ]
    served = served_on(varied_model(), machines, plain="plain", plain_max_tokens=16)
    return BatchScheduler(served=served, batch=4, traces=store)


def trace_ids(records: list[dict[str, object]]) -> list[str]:
    return [str(r["id"]) for r in records if r["type"] == "trace"]


def test_each_choice_is_a_trace_of_the_runs_own_events() -> None:
    store = TraceStore(8)
    with scheduler(store) as sched:
        answer = ask(sched, chat("calc", "go", n=2))
    ids = [trace_ids([dict(r) for r in c.llmos]) for c in answer.choices]
    assert len(ids) == 2 and all(len(i) == 1 for i in ids) and ids[0] != ids[1]
    for choice, (trace_id,) in zip(answer.choices, ids, strict=True):
        found = store.get(trace_id)
        assert found is not None and found.status == "stop" and found.model == "calc"
        trace = found.trace()
        assert trace.header["served_model"] == "calc" and trace.header["task"] == "go"
        assert trace.header["choice"] == choice.choice and trace.header["llmos_trace"] == 2
        assert trace.transcript == choice.content
        [finished] = [e for e in trace.events if isinstance(e, ActionFinished)]
        assert finished.result.stdout == PRINTED + "\n"
        assert isinstance(trace.events[-1], DoneEvent)


def test_step_details_only_when_asked() -> None:
    for details in (False, True):
        store = TraceStore(4, details=details)
        with scheduler(store) as sched:
            answer = ask(sched, chat("plain", "hello", max_tokens=4))
        (trace_id,) = trace_ids(answer.records())
        trace = _trace(store, trace_id)
        sampled = [e for e in trace.events if isinstance(e, TokenEvent) and not e.forced]
        assert sampled, "the plain model samples its reply"
        assert all((e.detail is not None) == details for e in sampled)


def test_without_a_store_nothing_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a trace was recorded without --traces")

    hosts: list[RowHost] = []

    class Host(RowHost):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            hosts.append(self)

    monkeypatch.setattr(traces_record.RowTrace, "__init__", refuse)
    monkeypatch.setattr(sched_loop, "RowHost", Host)
    with scheduler(None) as sched:
        answer = ask(sched, chat("calc", "go"))
        plain = ask(sched, chat("plain", "hello", max_tokens=4))
    assert answer.choices[0].content.endswith("[/OUTPUT]")
    assert trace_ids(answer.records()) == [] and trace_ids(plain.records()) == []
    assert len(hosts) == 2 and not any(host.details for host in hosts)  # no step details


def test_a_cancelled_choice_keeps_its_trace_with_the_unfinished_action() -> None:
    store = TraceStore(4)

    async def go(sched: BatchScheduler) -> None:
        ticket = sched.submit(chat("sleep", "nap"))
        reading = asyncio.ensure_future(read(ticket))
        await asyncio.to_thread(wait_until, lambda: sched.actions_running() == 1, 60.0)
        ticket.cancel()
        await reading

    with scheduler(store) as sched:
        asyncio.run(go(sched))
        wait_until(lambda: len(store) == 1, 30.0)
    [found] = store.listed()
    assert found.status == "cancelled" and found.model == "sleep"
    from llmos_grammar.viewer.run_view import run_view

    view = run_view(found.trace())
    assert [card["status"] for card in view.cards] == ["did not finish"]


def _trace(store: TraceStore, trace_id: str) -> Trace:
    found = store.get(trace_id)
    assert found is not None, f"trace {trace_id} is not kept"
    return found.trace()


# ---- a real server on the tiny model --------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("traces")
    running = Running(folder, "--traces", "2", "--api-key", KEY, command=SUPPORT)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def asked(server: Running) -> list[dict[str, object]]:
    """Three calculator requests, one after the other: each reply's message."""
    return [_message(_chat(server, f"request {i}")) for i in range(3)]


def _chat(server: Running, text: str, **extra: object) -> httpx.Response:
    body = {"model": "calc", "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(server.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=120)


def _message(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    assert isinstance(message, dict)
    return message


def _trace_id(message: dict[str, object]) -> str:
    llmos = message["llmos"]
    assert isinstance(llmos, dict)
    [record] = llmos["traces"]
    assert record["url"] == "/traces/" + record["id"]
    return str(record["id"])


def _get(server: Running, path: str, **headers: str) -> httpx.Response:
    return httpx.get(server.url + path, headers=headers, timeout=120)


def test_three_requests_with_traces_2_keep_the_last_two(
    server: Running, asked: list[dict[str, object]]
) -> None:
    first, second, third = (_trace_id(m) for m in asked)
    assert len({first, second, third}) == 3
    gone = _get(server, f"/traces/{first}", **AUTH)
    assert gone.status_code == 404
    error = gone.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "trace_not_found"
    assert "last 2" in error["message"]
    for trace_id in (second, third):
        page = _get(server, f"/traces/{trace_id}", **AUTH)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    index = _get(server, "/traces?format=json", **AUTH).json()["data"]
    assert [(e["id"], e["model"], e["status"]) for e in index] == [
        (third, "calc", "stop"),
        (second, "calc", "stop"),
    ]
    html = _get(server, "/traces", **AUTH).text
    assert f'href="/traces/{third}"' in html and f'href="/traces/{second}"' in html
    assert first not in html and "request 2" in html


def test_the_page_shows_the_reply_escaped_and_the_action_card(
    server: Running, asked: list[dict[str, object]]
) -> None:
    message = asked[-1]
    page = _get(server, f"/traces/{_trace_id(message)}", **AUTH).text
    assert PRINTED not in page and "<img" not in page  # the program's markup stays data
    found = DATA.search(page)
    assert found is not None
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e\\u0026amp;" in found[1]
    run = json.loads(found[1])["run"]
    assert "".join(run["texts"]) == message["content"]
    [card] = run["cards"]
    assert card["action"] == "python" and card["input"] == CODE
    assert card["stdout"] == PRINTED + "\n" and card["status"] == "exit 0"


def test_the_jsonl_reads_back_as_the_trace_llmos_run_writes(
    server: Running, asked: list[dict[str, object]], tmp_path: Path
) -> None:
    message = asked[-1]
    response = _get(server, f"/traces/{_trace_id(message)}?format=jsonl", **AUTH)
    assert response.status_code == 200
    path = tmp_path / "trace.jsonl"
    path.write_bytes(response.content)
    trace = read_trace(path)
    assert trace.transcript == message["content"]
    assert trace.header["served_model"] == "calc" and trace.header["task"] == "request 2"
    assert trace.header["model"] == "varied-random-llama" and "graph" in trace.header
    assert response.content == trace_jsonl(trace)  # what the store holds, line for line


def test_a_stream_carries_the_trace_id(server: Running) -> None:
    body = {"model": "calc", "messages": [{"role": "user", "content": "s"}], "stream": True}
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=120
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    records = [
        r
        for line in lines
        for choice in json.loads(line[6:]).get("choices", [])
        for r in (choice["delta"].get("llmos") or {}).get("traces", [])
    ]
    [record] = records
    assert _get(server, record["url"], **AUTH).status_code == 200


def test_the_routes_need_the_key(server: Running, asked: list[dict[str, object]]) -> None:
    trace_id = _trace_id(asked[-1])
    paths = ("/traces", "/traces?format=json", f"/traces/{trace_id}")
    for path in (*paths, f"/traces/{trace_id}?format=jsonl", f"/traces/{new_id()}"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            response = _get(server, path, **headers)
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"]["code"] == "invalid_api_key"
            assert "request 2" not in response.text and "onerror" not in response.text


def test_a_bad_format_is_a_400_naming_it(server: Running, asked: list[dict[str, object]]) -> None:
    response = _get(server, f"/traces/{_trace_id(asked[-1])}?format=xml", **AUTH)
    assert response.status_code == 400 and response.json()["error"]["param"] == "format"


def test_without_traces_there_are_no_routes_and_no_trace_field(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    running = Running(tmp_path_factory.mktemp("untraced"), command=SUPPORT)
    try:
        message = _message(_chat(running, "go"))
        llmos = message["llmos"]
        assert isinstance(llmos, dict) and "traces" not in llmos and llmos["actions"]
        for path in ("/traces", "/traces/" + new_id()):
            response = _get(running, path)
            assert response.status_code == 404
            assert response.json()["error"]["type"] == "invalid_request_error"
    finally:
        running.stop()


# ---- llmos serve itself, on the default model -----------------------------------------------


@pytest.mark.model
def test_llmos_serve_traces_a_calculator_request(tmp_path: Path) -> None:
    command = ("-m", "llmos_grammar.cli.main", "serve", "examples/calculator/spec.yaml")
    options = ("--engine", "transformers", "--traces", "2", "--api-key", KEY)
    running = Running(tmp_path, *options, command=command)
    try:
        body = {"model": "calculator", "messages": [{"role": "user", "content": "What is 48*27?"}]}
        response = httpx.post(
            running.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=900
        )
        message = _message(response)
        assert _get(running, f"/traces/{_trace_id(message)}").status_code == 401
        page = _get(running, f"/traces/{_trace_id(message)}", **AUTH).text
        found = DATA.search(page)
        assert found is not None
        run = json.loads(found[1])["run"]
        assert "".join(run["texts"]) == message["content"]
        [card] = run["cards"]
        assert card["action"] == "python" and card["stdout"] == "1296\n"
        assert run["meta"]["model"] and run["meta"]["engine"] == "transformers"
    finally:
        running.stop()
