"""A scripted Scheduler for the HTTP layer's tests, and the real server around it.

`python -m tests.serve_http_support --port 0 --log FILE [...]` serves it with
`llmos_grammar.serve.server.serve` and the protocol's parsers, the code path of
`llmos serve`, and prints where it listens. The last user message (or the prompt) is
a script for the fake: its first word picks what the request does. Everything the fake
sees (submit, cancel, finish, drain, close) is appended to the log file as JSON lines,
which the tests read back.

    echo WORDS     one text delta per word, then stop
    slow N         N words, one every 0.2 s
    hang           nothing until cancelled
    tool           a call of the request's first tool (finish_reason tool_calls)
    llmos          a state and an action record, then the answer
    fail STATUS    RequestFailed with STATUS after one word
    nodone         ends without RequestDone
    crash          submit raises RuntimeError (a bug in the scheduler)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from llmos_grammar.serve.types import (
    ChoiceDone,
    Draining,
    GenerationRequest,
    LlmosDelta,
    QueueFull,
    RequestDone,
    RequestFailed,
    SchedulerStats,
    ServedModel,
    ServeEvent,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    UnknownModel,
    Usage,
)

MODELS = (
    ServedModel(id="calc", spec="examples/calculator/spec.yaml", model="tiny", max_tokens=256),
    ServedModel(id="tiny", spec=None, model="tiny", max_tokens=512),
)
ACTION = {
    "type": "action",
    "state": "code",
    "action": "python",
    "input": "print(48*27)",
    "output": "1296\n",
    "status": "exit 0",
    "exit_code": 0,
    "limit_hit": None,
    "duration_s": 0.01,
}


class Log:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, **record: object) -> None:
        if self.path is not None:
            with self.path.open("a") as out:
                out.write(json.dumps(record) + "\n")


class FakeTicket:
    def __init__(self, number: int, request: GenerationRequest, owner: FakeScheduler) -> None:
        self.number = number
        self.request = request
        self.owner = owner
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.owner.log.write(event="cancel", ticket=self.number)
        self.owner.running.discard(self.number)

    async def events(self) -> AsyncIterator[ServeEvent]:
        try:
            async for event in self._script():
                if self.cancelled:
                    return
                yield event
        finally:
            self.owner.running.discard(self.number)

    async def _script(self) -> AsyncIterator[ServeEvent]:
        words = script_of(self.request).split()
        verb, rest = (words[0], words[1:]) if words else ("echo", [])
        n = self.request.n
        if verb == "hang":
            await asyncio.sleep(3600)
        if verb == "nodone":
            yield TextDelta(0, "half")
            return
        if verb == "fail":
            yield TextDelta(0, "before ")
            status = int(rest[0]) if rest else 500
            yield RequestFailed(status, f"scripted failure {status}", code="scripted")
            return
        if verb == "tool":
            async for event in self._tool():
                yield event
            return
        if verb == "slow":
            rest = [f"w{i}" for i in range(int(rest[0]) if rest else 10)]
        records: tuple[Mapping[str, object], ...] = ()
        if verb == "llmos":
            records = ({"type": "state", "state": "code", "trigger": "[CODE]"}, ACTION)
            for choice in range(n):
                for record in records:
                    yield LlmosDelta(choice, record)
            rest = ["48*27", "=", "1296"]
        for choice in range(n):
            text = ""
            for i, word in enumerate(rest):
                piece = word if i == 0 else " " + word
                text += piece
                if verb == "slow":
                    await asyncio.sleep(0.2)
                yield TextDelta(choice, piece)
            yield ChoiceDone(choice, "stop", text, llmos=records)
        yield self._done(len(rest) * n)

    async def _tool(self) -> AsyncIterator[ServeEvent]:
        tool = self.request.tools[0] if self.request.tools else Tool("none", "", {})
        call = ToolCall(
            id="call_0", name=tool.name, arguments=json.dumps({"expression": "48*27 " * 10})
        )
        yield ToolCallDelta(0, 0, call)
        yield ChoiceDone(0, "tool_calls", "", tool_calls=(call,))
        yield self._done(12)

    def _done(self, completion: int) -> RequestDone:
        prompt = sum(len(m.content.split()) for m in self.request.messages) + 10
        cached = 8 if len(self.request.messages) > 1 else 0
        self.owner.totals = [
            a + b for a, b in zip(self.owner.totals, (prompt, cached, completion), strict=True)
        ]
        self.owner.log.write(event="finish", ticket=self.number)
        return RequestDone(Usage(prompt, completion, cached))


def script_of(request: GenerationRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    users = [m.content for m in request.messages if m.role == "user"]
    return users[-1] if users else ""


class FakeScheduler:
    def __init__(self, log: Log, max_queue: int = 64) -> None:
        self.log = log
        self.max_queue = max_queue
        self.numbers = itertools.count()
        self.running: set[int] = set()
        self.draining = False
        self.closed = False
        self.totals = [0, 0, 0]  # prompt, cached, completion tokens

    def models(self) -> tuple[ServedModel, ...]:
        return MODELS

    def submit(self, request: GenerationRequest) -> FakeTicket:
        if self.draining:
            raise Draining("draining")
        if request.model not in {m.id for m in MODELS}:
            raise UnknownModel(f"no model {request.model!r}", param="model")
        if script_of(request) == "crash":
            raise RuntimeError("secret internal detail")
        if len(self.running) >= self.max_queue:
            raise QueueFull("the queue is full", retry_after_s=2)
        ticket = FakeTicket(next(self.numbers), request, self)
        self.running.add(ticket.number)
        self.log.write(
            event="submit",
            ticket=ticket.number,
            script=script_of(request),
            session=request.session,
            stream=request.stream,
        )
        return ticket

    def stats(self) -> SchedulerStats:
        prompt, cached, completion = self.totals
        return SchedulerStats(0, len(self.running), 0, 0, prompt, cached, completion)

    def drain(self, grace_s: float) -> None:
        self.draining = True
        self.log.write(event="drain", grace_s=grace_s)

    def close(self) -> None:
        self.closed = True
        self.log.write(event="close")


def main() -> None:
    from llmos_grammar.serve.app import protocol_options
    from llmos_grammar.serve.server import Listen, serve

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--api-key")
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024)
    args = parser.parse_args()
    scheduler = FakeScheduler(Log(args.log), args.max_queue)
    options = protocol_options(scheduler.models(), args.api_key, args.max_body_bytes)
    serve(scheduler, options, Listen("127.0.0.1", args.port, args.grace))


if __name__ == "__main__":
    main()


# ---- the tests' side: start the server in a subprocess, read its log ------------------

ROOT = Path(__file__).resolve().parents[1]


class Running:
    """A server process on 127.0.0.1: the fake scheduler's, or `llmos serve ARGS` (`command`)."""

    def __init__(self, folder: Path, *options: str, command: tuple[str, ...] | None = None) -> None:
        import subprocess
        import sys

        self.folder = folder
        self.log = folder / "fake.jsonl"
        self.out = folder / "out.txt"
        self.err = folder / "err.txt"
        fake = ("-m", "tests.serve_http_support", "--log", str(self.log))
        argv = [sys.executable, *(command or fake), "--port", "0", *options]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                argv, cwd=ROOT, stdout=out, stderr=err, start_new_session=True
            )
        self.url = self._wait_listening(deadline_s=600)

    def _wait_listening(self, deadline_s: float) -> str:
        import re
        import time

        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://\S+?)/v1", self.out.read_text())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the server exited {self.process.returncode}: {self.stderr()}"
                )
            time.sleep(0.05)
        raise AssertionError(f"the server did not listen within {deadline_s} s: {self.stderr()}")

    def stderr(self) -> str:
        return self.err.read_text()[-4000:]

    def records(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def wait_for(self, event: str, deadline_s: float = 30, **match: object) -> dict[str, object]:
        """The first log record of `event` with the fields of `match`, waiting up to deadline_s."""
        import time

        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            for record in self.records():
                if record["event"] == event and all(record.get(k) == v for k, v in match.items()):
                    return record
            time.sleep(0.02)
        raise AssertionError(f"no {event} {match} within {deadline_s} s: {self.records()}")

    def signal(self, signum: int) -> None:
        import os

        os.kill(self.process.pid, signum)

    def wait(self, deadline_s: float = 60) -> int:
        return self.process.wait(timeout=deadline_s)

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=30)
