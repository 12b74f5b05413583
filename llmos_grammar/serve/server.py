"""Run the app under uvicorn; SIGTERM or Ctrl-C drains it, a second signal stops it now.

A drain: new requests get 503, the running ones have `grace_s` to finish, then the
rest are cancelled (their actions killed) and the server exits; `serve` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from llmos_grammar.errors import LlmosError
from llmos_grammar.serve.app import AppOptions, build_app
from llmos_grammar.serve.http_gate import Gate
from llmos_grammar.serve.types import Scheduler

if TYPE_CHECKING:
    import socket

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Listen:
    """Where the server listens and how long a drain waits for running requests."""

    host: str = "127.0.0.1"
    port: int = 8000
    grace_s: float = 30.0


def serve(
    scheduler: Scheduler,
    options: AppOptions,
    listen: Listen,
    say: Callable[[str], None] | None = None,
) -> None:
    """Serve until a signal drains the server; the scheduler is closed on the way out."""
    app = build_app(scheduler, options)
    config = uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config, app.state.gate, scheduler, listen.grace_s, say or _say)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        raise LlmosError(
            f"cannot listen on {listen.host}:{listen.port} (see the error above): "
            "choose another --port or --host"
        ) from exc
    finally:
        scheduler.close()


def _say(line: str) -> None:
    print(f"llmos serve: {line}", flush=True)


class DrainingServer(uvicorn.Server):
    """uvicorn's server with our signal handling: drain first, exit after."""

    def __init__(
        self,
        config: uvicorn.Config,
        gate: Gate,
        scheduler: Scheduler,
        grace_s: float,
        say: Callable[[str], None],
    ) -> None:
        super().__init__(config)
        self.gate = gate
        self.scheduler = scheduler
        self.grace_s = grace_s
        self.say = say
        self.loop: asyncio.AbstractEventLoop | None = None
        self.drain_task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Our handlers while serving, the old ones after; no signal is raised again."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        before = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.loop is None:  # not started yet: nothing to drain
            self.should_exit = True
            return
        self.loop.call_soon_threadsafe(self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        if self.drain_task is None:
            self.drain_task = asyncio.ensure_future(self.drain(signal.Signals(sig).name))
            return
        self.say("stopping now: cancelling every running request")
        self.gate.stop_all()
        self.should_exit = True
        self.force_exit = True

    async def drain(self, why: str) -> None:
        """Refuse new requests, wait for the running ones up to grace_s, cancel the rest."""
        self.gate.draining = True
        running = self.gate.running
        self.say(f"{why}: draining, {running} request(s) running get {self.grace_s:g} s")
        # the scheduler's drain blocks until its requests end: it runs beside the loop
        threading.Thread(
            target=self.scheduler.drain, args=(self.grace_s,), name="llmos-drain", daemon=True
        ).start()
        if not await self.gate.wait_idle(self.grace_s):
            self.say(f"cancelling {self.gate.stop_all()} request(s) still running")
            await self.gate.wait_idle(5.0)
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started:
            models = ", ".join(m.id for m in self.scheduler.models())
            self.say(f"listening on {self.address()}/v1 (models: {models})")

    def address(self) -> str:
        """http://HOST:PORT of the first socket (the real port when 0 was asked)."""
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                host = f"[{host}]" if ":" in host else host
                return f"http://{host}:{port}"
        return f"http://{self.config.host}:{self.config.port}"
