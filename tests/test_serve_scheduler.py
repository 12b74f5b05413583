"""The scheduler of `llmos serve`, driven directly with asyncio (no HTTP), on tiny random models.

A re-sent conversation continues its kept row and equals one session; concurrent
requests are rows of one batch and each is answered exactly once; stop strings,
n choices, time limits, the bounded queue, drain; spec actions run in the real
sandbox, their records come back, `confirm: ask` is refused without --yes, and a
cancelled request's sleeping action ends at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from llmos_grammar.runtime.pieces import encode_untrusted
from llmos_grammar.runtime.session import Session
from llmos_grammar.serve.models import served_on
from llmos_grammar.serve.scheduler import BatchScheduler
from llmos_grammar.serve.types import (
    BadRequest,
    ChoiceDone,
    Draining,
    GenerationRequest,
    QueueFull,
    RequestDone,
    RequestFailed,
    SamplingParams,
    UnknownModel,
)
from tests.serve_sched_support import Answer, action_machine, ask, chat, read, wait_until
from tests.test_runtime_batch import varied_model
from tests.test_runtime_helpers import FakeRunner

TURNS = ["What is two and two?", "And times three?", "Now subtract five."]
PLAIN = "plain"


def scheduler(**kw: object) -> BatchScheduler:
    machines = [
        action_machine("calc", "print(6 * 7)\n"),
        action_machine("sleep", "import time\ntime.sleep(30)\n"),
        action_machine("ask", "print(1)\n", confirm="ask"),
    ]
    served = served_on(varied_model(), machines, plain=PLAIN, plain_max_tokens=16)
    return BatchScheduler(served=served, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sched() -> Iterator[BatchScheduler]:
    with scheduler(batch=4, max_queue=32) as s:
        yield s


def kept_ids(s: BatchScheduler) -> list[list[int]]:
    return [list(row.seq.ids) for loop in s.loops.values() for row in loop.kept.rows]


def test_a_resent_conversation_continues_its_row_as_one_session_does(sched: BatchScheduler) -> None:
    first = ask(sched, chat(PLAIN, TURNS[0]))
    second = ask(sched, chat(PLAIN, TURNS[0], first.text, TURNS[1]))
    third = ask(sched, chat(PLAIN, TURNS[0], first.text, TURNS[1], second.text, TURNS[2]))
    assert first.done.usage.cached_tokens == 0
    # everything the first turn fed (its prompt and reply but the last id) is reused
    assert second.done.usage.cached_tokens >= first.done.usage.prompt_tokens
    assert third.done.usage.cached_tokens >= second.done.usage.prompt_tokens
    machine = sched.served.by_id[PLAIN].machine
    with Session(machine, varied_model(), runner=FakeRunner()) as session:
        replies = [session.send(t).text for t in TURNS]
        assert [first.text, second.text, third.text] == replies
        assert list(session.seq.ids) in kept_ids(sched)  # the very ids, token for token


def test_streamed_text_is_the_content_and_usage_counts_the_reply(sched: BatchScheduler) -> None:
    answer = ask(sched, chat(PLAIN, "Tell me a story.", max_tokens=5))
    [choice] = answer.choices
    assert answer.streamed() == choice.content
    assert choice.finish_reason == "length" and answer.done.usage.completion_tokens == 5
    assert isinstance(answer.events[-1], RequestDone) and answer.events[-2] == choice


def test_a_stop_string_ends_the_text_before_it(sched: BatchScheduler) -> None:
    whole = ask(sched, chat(PLAIN, "Say something long.")).text
    assert len(whole) > 6
    stop = whole[3:6]
    cut = ask(sched, chat(PLAIN, "Say something long.", stop=(stop, "never written")))
    [choice] = cut.choices
    assert choice.finish_reason == "stop"
    assert choice.content == whole[: whole.index(stop)]
    assert cut.streamed() == choice.content  # the stop string itself was never sent


def test_n_choices_are_n_rows_each_answered_once(sched: BatchScheduler) -> None:
    sampling = SamplingParams(temperature=1.0, seed=7)
    answer = ask(sched, chat(PLAIN, "Pick a word.", n=3, sampling=sampling, max_tokens=6))
    assert [c.choice for c in answer.choices] == [0, 1, 2]
    assert sum(isinstance(e, RequestDone) for e in answer.events) == 1
    for c in answer.choices:
        assert answer.streamed(c.choice) == c.content
    again = ask(sched, chat(PLAIN, "Pick a word.", n=3, sampling=sampling, max_tokens=6))
    assert [c.content for c in again.choices] == [c.content for c in answer.choices]


def test_concurrent_requests_are_rows_of_one_batch_each_answered_once(
    sched: BatchScheduler,
) -> None:
    requests = [
        chat(PLAIN, f"Question number {k}?") if k % 3 else chat("calc", f"go {k}")
        for k in range(12)
    ]

    async def one(request: GenerationRequest) -> Answer:
        return await read(sched.submit(request))

    async def all_at_once() -> list[Answer]:
        return await asyncio.gather(*(asyncio.create_task(one(r)) for r in requests))

    answers = asyncio.run(all_at_once())
    for request, answer in zip(requests, answers, strict=True):
        ends = [e for e in answer.events if isinstance(e, RequestDone | RequestFailed)]
        assert ends == [answer.events[-1]] and isinstance(ends[0], RequestDone)
        assert len(answer.choices) == 1
        if request.model == "calc":
            assert "[OUTPUT]\n42\n[/OUTPUT]" in answer.text
        else:  # a row of a batch decodes as it would alone
            assert answer.text == ask(sched, request).text
    assert sched.stats().running_rows == 0 and sched.stats().queued == 0


def test_a_spec_action_runs_in_the_decode_and_its_records_come_back(
    sched: BatchScheduler,
) -> None:
    answer = ask(sched, chat("calc", "What is six times seven?"))
    [choice] = answer.choices
    assert choice.content == "print(6 * 7)\n[/CODE]\n[OUTPUT]\n42\n[/OUTPUT]"
    assert choice.finish_reason == "stop"
    records = answer.records()
    assert records == [dict(r) for r in choice.llmos]
    action = next(r for r in records if r["type"] == "action")
    assert action["input"] == "print(6 * 7)\n" and action["output"] == "42\n"
    assert action["status"] == "exit 0" and action["exit_code"] == 0
    assert {"type": "state", "state": "run", "trigger": "[/CODE]"} in records


def test_confirm_ask_is_refused_without_yes_and_runs_with_it(sched: BatchScheduler) -> None:
    refused = ask(sched, chat("ask", "go"))
    [action] = [r for r in refused.records() if r["type"] == "action"]
    assert str(action["status"]).startswith("refused: ") and "--yes" in str(action["status"])
    assert "[OUTPUT]" not in refused.text and refused.choices[0].finish_reason == "stop"
    with scheduler(yes=True) as approving:
        ran = ask(approving, chat("ask", "go"))
    assert "[OUTPUT]\n1\n[/OUTPUT]" in ran.text


def test_cancel_kills_a_sleeping_action_at_once(sched: BatchScheduler) -> None:
    async def go() -> tuple[Answer, float]:
        ticket = sched.submit(chat("sleep", "go"))
        reading = asyncio.create_task(read(ticket))
        await asyncio.to_thread(wait_until, lambda: sched.actions_running() == 1)
        started = time.monotonic()
        ticket.cancel()
        await asyncio.to_thread(wait_until, lambda: sched.actions_running() == 0, 5.0)
        return await reading, time.monotonic() - started

    answer, seconds = asyncio.run(go())
    assert seconds < 2.0  # the action sleeps 30 s and its policy allows 10
    assert answer.failed.status == 499
    assert not any(isinstance(e, ChoiceDone) for e in answer.events)
    assert sched.stats().running_rows == 0
    closing = [t for t in threading.enumerate() if t.name == "llmos-serve-close"]
    for thread in closing:
        thread.join(5.0)


def test_a_request_past_its_time_limit_ends_with_length() -> None:
    with scheduler(request_timeout_s=0.5) as s:
        started = time.monotonic()
        answer = ask(s, chat("sleep", "go"))
        assert time.monotonic() - started < 5.0
        [choice] = answer.choices
        assert choice.finish_reason == "length" and "[OUTPUT]" not in choice.content
        wait_until(lambda: s.actions_running() == 0, 5.0)


def test_unknown_models_and_too_many_choices_are_refused(sched: BatchScheduler) -> None:
    with pytest.raises(UnknownModel) as unknown:
        sched.submit(chat("nope", "hi"))
    assert unknown.value.status == 404 and unknown.value.param == "model"
    assert "plain" in unknown.value.message
    with pytest.raises(BadRequest) as many:
        sched.submit(chat(PLAIN, "hi", n=99))
    assert many.value.param == "n"
    assert {m.id for m in sched.models()} == {PLAIN, "calc", "sleep", "ask"}
    assert next(m for m in sched.models() if m.id == PLAIN).spec is None


def test_a_full_queue_refuses_with_retry_after() -> None:
    with scheduler(batch=1, max_queue=2) as s:

        async def flood() -> tuple[list[Answer], list[QueueFull]]:
            tickets, refused = [], []
            for k in range(6):
                try:
                    tickets.append(s.submit(chat(PLAIN, f"Question {k}?", max_tokens=8)))
                except QueueFull as exc:
                    refused.append(exc)
            return list(await asyncio.gather(*(read(t) for t in tickets))), refused

        answers, refused = asyncio.run(flood())
    assert refused and all(e.status == 429 and e.retry_after_s >= 1 for e in refused)
    assert len(answers) + len(refused) == 6 and len(answers) >= 2
    assert all(isinstance(a.events[-1], RequestDone) for a in answers)


def test_drain_refuses_new_requests_and_ends_what_outlives_the_grace() -> None:
    with scheduler() as s:

        async def go() -> tuple[Answer, Answer]:
            quick = asyncio.create_task(read(s.submit(chat(PLAIN, "Hi.", max_tokens=4))))
            slow = asyncio.create_task(read(s.submit(chat("sleep", "go"))))
            await asyncio.to_thread(wait_until, lambda: s.actions_running() == 1)
            await asyncio.to_thread(s.drain, 0.3)
            with pytest.raises(Draining):
                s.submit(chat(PLAIN, "Too late."))
            return await quick, await slow

        quick, slow = asyncio.run(go())
        assert isinstance(quick.events[-1], RequestDone)
        assert slow.failed.status == 503
        wait_until(lambda: s.actions_running() == 0, 5.0)


def test_a_session_holds_the_conversation(sched: BatchScheduler) -> None:
    first = ask(sched, chat(PLAIN, TURNS[0], session="s-1"))
    held = ask(sched, chat(PLAIN, TURNS[1], session="s-1"))
    resent = ask(sched, chat(PLAIN, TURNS[0], first.text, TURNS[1]))
    assert held.text == resent.text
    assert held.done.usage.cached_tokens >= first.done.usage.prompt_tokens
    assert held.done.usage.prompt_tokens == resent.done.usage.prompt_tokens
    with pytest.raises(BadRequest) as other:
        sched.submit(chat("calc", "go", session="s-1"))
    assert other.value.param == "session"


def test_a_raw_completion_is_its_prompt_as_plain_text(sched: BatchScheduler) -> None:
    text = "<|im_start|>system\nOnce upon a time"
    answer = ask(sched, GenerationRequest(PLAIN, prompt=text, max_tokens=4))
    tokenizer = varied_model().tokenizer
    ids = encode_untrusted(tokenizer, text)
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") not in ids  # its text stays text
    assert answer.done.usage.prompt_tokens == len(ids)
    assert any(row[: len(ids)] == ids for row in kept_ids(sched))
    assert answer.choices[0].finish_reason == "length"


@pytest.mark.model
def test_specs_of_one_model_share_its_engine_and_the_model_is_served_plain() -> None:
    from llmos_grammar.ir import DEFAULT_MODEL
    from llmos_grammar.serve.models import load_served
    from tests.serve_sched_support import ROOT

    specs = [ROOT / "examples" / name / "spec.yaml" for name in ("calculator", "chat")]
    served = load_served(specs, engine="transformers")
    try:
        assert set(served.by_id) == {"calculator", "chat", DEFAULT_MODEL}
        [group] = served.groups
        assert all(s.group is group for s in served.by_id.values())
        calculator = served.by_id["calculator"].info
        assert calculator.spec == str(specs[0]) and calculator.max_tokens == 400
        assert served.by_id[DEFAULT_MODEL].info.spec is None
    finally:
        served.close()
    alone = load_served([], engine="transformers")
    try:
        assert [m.id for m in alone.models()] == [DEFAULT_MODEL]
    finally:
        alone.close()
