"""`llmos serve` under load: concurrent OpenAI clients against a real server on 127.0.0.1.

On the tiny random model (the mechanics): 32 clients with two requests each, streamed
and not, over a spec whose sandboxed action has a known output (calc), the chat
example and the plain model: every request answered exactly once and validly, and
afterwards no running row, queued request or sandbox process left. Clients that leave
mid-stream, or mid-action, free their rows and kill their sandboxes at once while the
server goes on. SIGTERM under load: new requests get 503, requests that can finish
within the grace period do, the others end with a 503 (plain) or an error chunk
(streamed), their sandboxes are killed, and the server exits 0. On the default model:
the calculator and chat examples and the plain model under 32 clients, then SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import openai
import pytest

from tests.serve_http_support import Running
from tests.serve_load_support import (
    CALC_CODE,
    CALC_OUTPUT,
    Outcome,
    ask,
    descendants,
    idle,
    save_tiny_model,
    scrape,
    series,
    wait_for,
    write_specs,
)

pytestmark = pytest.mark.slow

CLIENTS = 32
PER_CLIENT = 2
LOAD_S = 600  # the whole load, client side: bounded even on a loaded machine
CHAT_ROUTE = "/v1/chat/completions"
CALC_REPLY = f"[CODE]\n{CALC_CODE}[/CODE]\n[OUTPUT]\n{CALC_OUTPUT}[/OUTPUT]\n"
SERVE = ("-m", "llmos_grammar.cli.main", "serve")
GRACE_S = 10
BATCH = 16  # rows at once: 32 clients queue; the drain's late requests find a row


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    """The tiny model's folder (its plain model's id) and its specs: calc, sleep, chat."""
    folder = tmp_path_factory.mktemp("tiny")
    model = save_tiny_model(folder / "model")
    return str(model), write_specs(folder, model)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny: tuple[str, list[Path]]
) -> Iterator[Running]:
    specs = [str(path) for path in tiny[1]]
    options = ("--engine", "transformers", "--batch", str(BATCH), "--grace", str(GRACE_S))
    running = Running(tmp_path_factory.mktemp("serve"), *options, command=(*SERVE, *specs))
    yield running
    running.stop()


def api(server: Running, timeout: float = LOAD_S) -> openai.AsyncOpenAI:
    """No retries: a request the SDK sent twice would not be answered exactly once."""
    return openai.AsyncOpenAI(
        base_url=server.url + "/v1", api_key="-", max_retries=0, timeout=timeout
    )


def plan(index: int, plain: str) -> tuple[str, bool, int | None]:
    """Request `index`'s model, whether it streams, its max_tokens: every mix occurs."""
    model = ("calc", "chat", plain)[index % 3]
    stream = (index // 3) % 2 == 0
    return model, stream, None if model == "calc" else 4 + index % 8


async def load(server: Running, plain: str) -> list[Outcome]:
    """CLIENTS clients at once, each sending PER_CLIENT requests one after another."""
    client = api(server)

    async def one_client(k: int) -> list[Outcome]:
        done = []
        for index in range(k * PER_CLIENT, (k + 1) * PER_CLIENT):
            model, stream, max_tokens = plan(index, plain)
            text = f"Request {index}: what is six times seven?"
            done.append(
                await ask(client, index, model, stream=stream, max_tokens=max_tokens, text=text)
            )
        return done

    async with client:
        clients = asyncio.gather(*(one_client(k) for k in range(CLIENTS)))
        batches = await asyncio.wait_for(clients, LOAD_S)
    return [outcome for batch in batches for outcome in batch]


def check_answer(o: Outcome, plain: str) -> None:
    """A valid answer of OpenAI's shape, one of its kind, right for its model."""
    where = f"request {o.index} ({o.model}, stream={o.stream})"
    assert o.ok, f"{where} failed: {o.error_status} {o.error_code}"
    assert len(set(o.ids)) == 1 and o.ids[0].startswith("chatcmpl-"), where
    assert set(o.models) == {o.model}, where
    assert len(o.finish_reasons) == 1, f"{where}: finish reasons {o.finish_reasons}"
    assert len(o.usages) == 1, f"{where}: usages {o.usages}"
    finish, (prompt, completion, cached) = o.finish_reasons[0], o.usages[0]
    assert finish in {"stop", "length"}, where
    assert prompt > 0 and 0 <= cached <= prompt, where
    if o.max_tokens is not None:
        assert completion <= o.max_tokens, where
    if o.model == "calc":
        [action] = o.llmos["actions"]
        assert action["input"] == CALC_CODE and action["output"] == CALC_OUTPUT, where
        assert action["status"] == "exit 0", where
        assert o.content.startswith(CALC_REPLY), f"{where}: {o.content!r}"
    if o.model == plain:
        assert o.llmos == {}, where  # the plain model runs no spec
        assert (finish == "length") == (completion == o.max_tokens), f"{where}: {o.usages}"


def test_32_clients_are_each_answered_once_and_validly(
    server: Running, tiny: tuple[str, list[Path]]
) -> None:
    plain = tiny[0]
    before = scrape(server.url)
    baseline = set(descendants(server.process.pid))
    started = time.monotonic()
    outcomes = asyncio.run(load(server, plain))
    seconds = time.monotonic() - started
    assert sorted(o.index for o in outcomes) == list(range(CLIENTS * PER_CLIENT))
    for outcome in outcomes:
        check_answer(outcome, plain)
    assert len({o.ids[0] for o in outcomes}) == len(outcomes)  # one response each
    wait_for(lambda: idle(server.url), 30, "no running row, queued or in-flight request")
    wait_for(lambda: set(descendants(server.process.pid)) <= baseline, 30, "sandboxes ending")
    after = scrape(server.url)
    answered = _delta(before, after, CHAT_ROUTE, "200")
    assert answered == len(outcomes), f"the server answered {answered} of {len(outcomes)}"
    assert _answers(after) - _answers(before) == len(outcomes)  # nothing else was counted
    assert series(after, "llmos_actions_total", status="ok") >= CLIENTS * PER_CLIENT // 3
    print(f"{len(outcomes)} requests from {CLIENTS} clients in {seconds:.1f} s")


def test_clients_that_leave_mid_stream_free_their_rows_and_sandboxes(
    server: Running, tiny: tuple[str, list[Path]]
) -> None:
    plain = tiny[0]
    pid = server.process.pid
    baseline = set(descendants(pid))
    before = scrape(server.url)
    left, sandboxes, freed_s = asyncio.run(_leave(server, plain, baseline))
    assert sandboxes, "no sandbox of the sleeping actions was seen"
    assert freed_s < 5.0  # the actions sleep 60 s under a 120 s limit: killed, not ended
    wait_for(lambda: idle(server.url), 10, "the rows of the clients that left being freed")
    after = scrape(server.url)
    assert _delta(before, after, CHAT_ROUTE, "499") == left  # each counted as gone, once
    assert _delta(before, after, CHAT_ROUTE, "200") == 0
    # the server goes on: a new request is answered, and its action runs
    outcome = asyncio.run(_one(server, "calc"))
    check_answer(outcome, plain)


async def _leave(server: Running, plain: str, baseline: set[int]) -> tuple[int, set[int], float]:
    """Streams that leave at their first text or while their action sleeps, and plain
    requests abandoned while their action sleeps; (how many left, the sandboxes seen, the
    seconds until every sandbox was gone after they left)."""
    client = api(server)
    leave = asyncio.Event()

    async def stream_then_leave(model: str, until: Callable[[dict[str, object]], bool]) -> None:
        chunks = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Go on for a long time."}],
            stream=True,
            max_tokens=1000 if model == plain else openai.omit,
        )
        async for chunk in chunks:
            delta = chunk.choices[0].delta.model_dump() if chunk.choices else {}
            if until(delta):
                break
        await leave.wait()
        await chunks.close()  # the connection closes mid-stream

    def has_text(delta: dict[str, object]) -> bool:
        return bool(delta.get("content"))

    def in_action(delta: dict[str, object]) -> bool:
        llmos = delta.get("llmos")
        states = llmos.get("states", []) if isinstance(llmos, dict) else []
        return any(s["state"] == "run" for s in states)

    async with client:
        streams = [stream_then_leave(plain, has_text) for _ in range(3)]
        streams += [stream_then_leave("sleep", in_action) for _ in range(3)]
        tasks = [asyncio.ensure_future(s) for s in streams]
        plain_asks = [
            asyncio.ensure_future(_one(server, "sleep", stream=False, timeout=LOAD_S))
            for _ in range(2)
        ]

        def sandboxes() -> set[int]:
            return set(descendants(server.process.pid)) - baseline

        await _until(lambda: len(sandboxes()) >= 5, 120, "five sleeping actions' sandboxes")
        seen = sandboxes()
        left_at = time.monotonic()
        leave.set()
        for task in plain_asks:
            task.cancel()  # the SDK closes the connection of an abandoned request
        await asyncio.gather(*tasks)
        await asyncio.gather(*plain_asks, return_exceptions=True)
        await _until(lambda: not sandboxes(), 30, "the sandboxes of the clients that left ending")
        freed = time.monotonic() - left_at
    return len(tasks) + len(plain_asks), seen, freed


def test_sigterm_under_load_finishes_or_stops_every_request_and_exits_0(
    server: Running, tiny: tuple[str, list[Path]]
) -> None:
    """The module's last test: the server exits."""
    plain = tiny[0]
    baseline = set(descendants(server.process.pid))
    outcomes, late, refused, sandboxes = asyncio.run(_sigterm(server, plain, baseline))
    assert server.wait(deadline_s=120) == 0
    assert "draining" in server.out.read_text()
    assert refused.error_status == 503 and refused.error_code == "draining"
    for outcome in outcomes:  # each either finished whole or was stopped as documented
        if outcome.ok:
            check_answer(outcome, plain)
        else:
            assert (outcome.error_status, outcome.error_code) in {
                (503, "shutdown"),
                (0, "shutdown"),
            }
    for outcome in [o for o in outcomes if o.model == "sleep"]:  # they sleep past the grace
        assert outcome.error_status == (0 if outcome.stream else 503), outcome
    for outcome in late:  # a few tokens, taken just before the signal: done within the grace
        check_answer(outcome, plain)
    assert sandboxes and not any(Path(f"/proc/{pid}").exists() for pid in sandboxes)


async def _sigterm(
    server: Running, plain: str, baseline: set[int]
) -> tuple[list[Outcome], list[Outcome], Outcome, set[int]]:
    """Requests in flight (sleeping actions among them), SIGTERM, then a new request."""
    client = api(server)
    kinds = [(plain, False, 48), (plain, True, 48), ("calc", False, None), ("calc", True, None)]
    kinds += [("sleep", False, None), ("sleep", True, None)]
    async with client:
        tasks = [
            asyncio.ensure_future(
                ask(client, i, model, stream=stream, max_tokens=max_tokens, text=f"Go {i}.")
            )
            for i, (model, stream, max_tokens) in enumerate(kinds * 2)
        ]

        def sandboxes() -> set[int]:
            return set(descendants(server.process.pid)) - baseline

        await _until(lambda: len(sandboxes()) >= 4, 120, "four sleeping actions' sandboxes")
        seen = sandboxes()
        accepted = [asyncio.Event() for _ in range(4)]
        late = [
            asyncio.ensure_future(
                ask(client, 100 + i, plain, stream=True, max_tokens=4, text="Hi.", accepted=took)
            )
            for i, took in enumerate(accepted)
        ]
        await asyncio.wait_for(asyncio.gather(*(took.wait() for took in accepted)), 60)
        server.signal(signal.SIGTERM)
        await _until(lambda: "draining" in server.out.read_text(), 30, "the drain starting")
        refused = await ask(client, 200, plain, stream=False, max_tokens=4, text="Too late?")
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks), GRACE_S + 60)
        late_outcomes = await asyncio.wait_for(asyncio.gather(*late), GRACE_S + 60)
    return list(outcomes), list(late_outcomes), refused, seen


async def _one(
    server: Running, model: str, *, stream: bool = True, timeout: float = LOAD_S
) -> Outcome:
    async with api(server, timeout) as client:
        return await ask(client, 0, model, stream=stream, max_tokens=None, text="Go.")


async def _until(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    """`wait_for` for a coroutine: the event loop keeps serving the clients meanwhile."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {deadline_s} s"
        await asyncio.sleep(0.05)


def _delta(before: str, after: str, route: str, status: str) -> float:
    key = "llmos_requests_total"
    return series(after, key, route=route, status=status) - series(
        before, key, route=route, status=status
    )


def _answers(text: str) -> float:
    """Every chat request the server counted, whatever its status."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("llmos_requests_total{") and f'route="{CHAT_ROUTE}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---- the default model -------------------------------------------------------------------

DEFAULT_PLAIN = "smollm2-135m-instruct"
QUESTION = "What is 48*27?"
COLOURS = [f"Name a colour that starts with {letter}." for letter in "BGRY"]


@pytest.mark.model
def test_32_clients_on_the_default_model(tmp_path: Path) -> None:
    specs = ("examples/calculator/spec.yaml", "examples/chat/spec.yaml")
    started = time.monotonic()
    command = ("-m", "tests.serve_load_support", "serve", *specs)  # on one core: see there
    running = Running(tmp_path, "--batch", "16", "--grace", "30", command=command)
    try:
        baseline = set(descendants(running.process.pid))
        listening = time.monotonic()
        # llama.cpp's engine holds 63 rows: 64 short chats, 16 at a time, fill it with kept
        # rows (48 at most), so a new row evicts one: never the one it copies its prefix
        # from, the oldest of the identical ones (a few prompts, each asked again and again)
        first = asyncio.run(_plain_wave(running, clients=16, each=4))
        outcomes = asyncio.run(_default_load(running))
        print(f"started in {listening - started:.1f} s, load {time.monotonic() - listening:.1f} s")
        assert sorted(o.index for o in outcomes) == list(range(CLIENTS))
        for outcome in [*first, *outcomes]:
            _check_default(outcome)
        wait_for(lambda: idle(running.url), 30, "no running row, queued or in-flight request")
        pid = running.process.pid
        wait_for(lambda: set(descendants(pid)) <= baseline, 30, "sandboxes ending")
        answered = series(
            scrape(running.url), "llmos_requests_total", route=CHAT_ROUTE, status="200"
        )
        assert answered == len(first) + CLIENTS
        running.signal(signal.SIGTERM)
        assert running.wait(deadline_s=120) == 0
    finally:
        running.stop()


async def _default_load(server: Running) -> list[Outcome]:
    client = api(server)
    models = ("calculator", "chat", DEFAULT_PLAIN)
    runs: list[Awaitable[Outcome]] = []
    for i in range(CLIENTS):
        model, stream = models[i % 3], (i // 3) % 2 == 0
        text = QUESTION if model == "calculator" else f"Tell me one fact about the number {i}."
        max_tokens = None if model == "calculator" else 16
        runs.append(ask(client, i, model, stream=stream, max_tokens=max_tokens, text=text))
    async with client:
        return list(await asyncio.wait_for(asyncio.gather(*runs), LOAD_S))


async def _plain_wave(server: Running, clients: int, each: int) -> list[Outcome]:
    """`clients` clients sending `each` short plain chats one after another (four prompts in
    turn)."""
    client = api(server)

    async def one_client(k: int) -> list[Outcome]:
        done = []
        for j in range(each):
            index = 100 + k * each + j
            text = COLOURS[index % len(COLOURS)]
            done.append(
                await ask(client, index, DEFAULT_PLAIN, stream=j % 2 == 0, max_tokens=4, text=text)
            )
        return done

    async with client:
        batches = await asyncio.wait_for(
            asyncio.gather(*(one_client(k) for k in range(clients))), LOAD_S
        )
    return [outcome for batch in batches for outcome in batch]


def _check_default(o: Outcome) -> None:
    where = f"request {o.index} ({o.model}, stream={o.stream})"
    assert o.ok, f"{where} failed: {o.error_status} {o.error_code}"
    assert len(set(o.ids)) == 1 and set(o.models) == {o.model}, where
    assert len(o.finish_reasons) == 1 and len(o.usages) == 1, where
    assert o.finish_reasons[0] in {"stop", "length"}, where
    if o.max_tokens is not None:
        assert o.usages[0][1] <= o.max_tokens, where
    if o.model == "calculator":
        actions = o.llmos["actions"]
        assert actions and all(a["status"] == "exit 0" for a in actions), where
        assert actions[0]["output"] == "1296\n", where
        assert "[OUTPUT]\n1296\n[/OUTPUT]" in o.content, f"{where}: {o.content!r}"
    if o.model == DEFAULT_PLAIN:
        assert o.llmos == {}, where
