"""The HTTP routes of `llmos serve`: OpenAI's API over a `Scheduler` (FastAPI).

    GET  /v1/models, /v1/models/{id}     the served specs and the base model
    POST /v1/chat/completions            chat; `stream: true` for server-sent chunks
    POST /v1/completions                 raw prompts
    GET  /health                         200 serving, 503 draining (no key needed)
    GET  /metrics                        Prometheus
    GET  /traces, /traces/{id}           with --traces N: the kept traces (traces_http.py)

Each request: the key, the drain gate, the body (size, UTF-8, JSON), the protocol's
validation, the scheduler; then its events as one response or as chunks.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

from llmos_grammar.serve.http_auth import check_key
from llmos_grammar.serve.http_body import MAX_BODY_BYTES, read_json
from llmos_grammar.serve.http_errors import json_response
from llmos_grammar.serve.http_gate import Gate
from llmos_grammar.serve.http_outcome import Outcomes, note_of
from llmos_grammar.serve.http_shape import Collected, Endpoint, Head, collect, response_json
from llmos_grammar.serve.metrics import CLIENT_CLOSED, Metrics
from llmos_grammar.serve.types import (
    BadRequest,
    GenerationRequest,
    Scheduler,
    ServedModel,
    ServeEvent,
    Ticket,
    UnknownModel,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from llmos_grammar.serve.traces import TraceStore

Parse = Callable[[Mapping[str, object]], GenerationRequest]
Handler = Callable[["Request", "Served"], Awaitable["Response"]]
SESSION_HEADER = "x-llmos-session"
_SESSION = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True)
class AppOptions:
    """What the routes need besides the scheduler: the key, the body limit, the parsers."""

    parse_chat: Parse
    parse_completion: Parse
    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    traces: TraceStore | None = None  # --traces N: the traces /traces serves (None: no routes)


@dataclass(frozen=True)
class Served:
    """What every route shares."""

    scheduler: Scheduler
    options: AppOptions
    gate: Gate
    metrics: Metrics
    started: int


def protocol_options(
    models: tuple[ServedModel, ...], api_key: str | None, max_body_bytes: int = MAX_BODY_BYTES
) -> AppOptions:
    """The options `llmos serve` runs with: the protocol's parsers, knowing the served models
    (an unknown model is a 404, max_tokens capped by the model's)."""
    from llmos_grammar.serve.protocol import parse_chat, parse_completion

    known = {model.id: model for model in models}
    return AppOptions(
        parse_chat=partial(parse_chat, known_models=known),
        parse_completion=partial(parse_completion, known_models=known),
        api_key=api_key,
        max_body_bytes=max_body_bytes,
    )


def build_app(scheduler: Scheduler, options: AppOptions) -> FastAPI:
    """The ASGI app; `app.state.gate` is what a drain closes."""
    from fastapi import FastAPI

    from llmos_grammar.serve import http_errors

    gate = Gate()
    served = Served(scheduler, options, gate, Metrics(scheduler, lambda: gate.running), _now())
    app = FastAPI(title="llmos serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gate = gate
    http_errors.install(app)
    app.add_middleware(Outcomes, record=served.metrics.record_request)
    routes: dict[str, tuple[str, Handler]] = {
        "/v1/chat/completions": ("POST", lambda r, s: _generate(r, s, "chat")),
        "/v1/completions": ("POST", lambda r, s: _generate(r, s, "completion")),
        "/v1/models": ("GET", _models),
        "/v1/models/{model:path}": ("GET", _model),
        "/health": ("GET", _health),
        "/metrics": ("GET", _metrics),
    }
    if options.traces is not None:
        routes.update({"/traces": ("GET", _trace_index), "/traces/{trace_id}": ("GET", _trace)})
    for path, (method, handler) in routes.items():
        app.add_route(path, _bind(handler, served), methods=[method])
    return app


def _bind(handler: Handler, served: Served) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(request, served)

    return endpoint


async def _generate(request: Request, served: Served, endpoint: Endpoint) -> Response:
    started = time.monotonic()
    check_key(request.headers.get("authorization"), served.options.api_key)
    served.gate.refuse_if_draining()
    body = await read_json(request, served.options.max_body_bytes)
    parse = served.options.parse_chat if endpoint == "chat" else served.options.parse_completion
    header = request.headers.get(SESSION_HEADER)
    generation, ticket = await accept(served.scheduler, lambda: with_session(parse(body), header))
    served.gate.add(ticket)
    try:
        head = Head.new(endpoint, generation.model)
        events = served.metrics.observe(served.gate.guard(ticket, ticket.events()), started)
        if generation.stream:
            return _stream(request, served, ticket, events, head, generation)
        collected = await _collect_unless_gone(request, ticket, events)
    except BaseException:
        ticket.cancel()
        served.gate.discard(ticket)
        raise
    served.gate.discard(ticket)
    if collected is None:
        note_of(request.scope).status = CLIENT_CLOSED
        return json_response({}, CLIENT_CLOSED)  # nobody reads it
    return json_response(response_json(head, collected))


async def accept(
    scheduler: Scheduler, prepare: Callable[[], GenerationRequest]
) -> tuple[GenerationRequest, Ticket]:
    """Validate and submit on a worker thread, so the event loop keeps serving: validation
    compiles a request's schemas, submit plans it (tokenizing, constraints). A ticket that
    arrives after its request was given up is cancelled."""

    def work() -> tuple[GenerationRequest, Ticket]:
        generation = prepare()
        return generation, scheduler.submit(generation)

    future = asyncio.get_running_loop().run_in_executor(None, work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_cancel_late_ticket)
        raise


def _cancel_late_ticket(future: asyncio.Future[tuple[GenerationRequest, Ticket]]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result()[1].cancel()


def _stream(
    request: Request,
    served: Served,
    ticket: Ticket,
    events: AsyncIterator[ServeEvent],
    head: Head,
    generation: GenerationRequest,
) -> Response:
    from llmos_grammar.serve.http_chunks import Chunks
    from llmos_grammar.serve.http_stream import TicketStream

    note = note_of(request.scope)

    def closed(status: int) -> None:
        served.gate.discard(ticket)
        note.status = status

    chunks = Chunks(head, generation.n, generation.include_usage)
    return TicketStream(ticket, events, chunks, closed)


async def _collect_unless_gone(
    request: Request, ticket: Ticket, events: AsyncIterator[ServeEvent]
) -> Collected | None:
    """The request's result, or None when the client went away first (then it is cancelled)."""
    work = asyncio.ensure_future(collect(events))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():
            work.cancel()
            ticket.cancel()
    # a task asked to cancel is not cancelled() until it ran again: done() says it finished
    return work.result() if work.done() and not work.cancelled() else None


async def _disconnected(request: Request) -> None:
    """Return when the client closes the connection (the body is read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def with_session(generation: GenerationRequest, header: str | None) -> GenerationRequest:
    """The explicit session of the `X-LLMOS-Session` header, checked against the body's."""
    if header is None:
        return generation
    if not _SESSION.fullmatch(header):
        raise BadRequest(
            "the X-LLMOS-Session header must be 1 to 128 letters, digits or . _ : -",
            param="session",
        )
    if generation.session not in (None, header):
        raise BadRequest("the X-LLMOS-Session header and the body name two sessions", "session")
    return replace(generation, session=header)


async def _models(request: Request, served: Served) -> Response:
    check_key(request.headers.get("authorization"), served.options.api_key)
    models = served.scheduler.models()
    return json_response({"object": "list", "data": [_model_json(m, served) for m in models]})


async def _model(request: Request, served: Served) -> Response:
    check_key(request.headers.get("authorization"), served.options.api_key)
    wanted = request.path_params["model"]
    for model in served.scheduler.models():
        if model.id == wanted:
            return json_response(_model_json(model, served))
    raise UnknownModel(f"no model {wanted[:200]!r}: GET /v1/models lists them", "model")


def _model_json(model: ServedModel, served: Served) -> dict[str, object]:
    return {
        "id": model.id,
        "object": "model",
        "created": served.started,
        "owned_by": "llmos",
        "root": model.model,
        "llmos": {"spec": model.spec is not None, "max_tokens": model.max_tokens},
    }


async def _health(request: Request, served: Served) -> Response:
    served.gate.refuse_if_draining()
    return json_response({"status": "ok"})


async def _metrics(request: Request, served: Served) -> Response:
    from starlette.responses import Response

    check_key(request.headers.get("authorization"), served.options.api_key)
    body, content_type = served.metrics.render()
    return Response(body, media_type=content_type)


async def _trace_index(request: Request, served: Served) -> Response:
    from llmos_grammar.serve.traces_http import trace_index

    check_key(request.headers.get("authorization"), served.options.api_key)
    return await trace_index(request, _traces(served))


async def _trace(request: Request, served: Served) -> Response:
    from llmos_grammar.serve.traces_http import trace_page

    check_key(request.headers.get("authorization"), served.options.api_key)
    return await trace_page(request, _traces(served))


def _traces(served: Served) -> TraceStore:
    store = served.options.traces
    if store is None:  # the routes exist only with a store
        raise RuntimeError("the trace routes need a TraceStore in AppOptions.traces")
    return store


def _now() -> int:
    return int(time.time())
