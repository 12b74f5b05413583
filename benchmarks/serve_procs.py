"""The servers bench_serve.py compares: `llmos serve` and llama-cpp-python's own OpenAI server.

Each runs as a child process on 127.0.0.1 with its output in a log file; `Server`
knows its base URL and reads the llama.cpp server's log for how many prompt
tokens each request evaluated (its prefix-match line, printed when verbose).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_S = 600.0  # a model's first load converts its GGUF: minutes on a loaded machine
_REMAINING = re.compile(r"(\d+) prefix-match hit, remaining (\d+) prompt tokens to eval")


@dataclass
class Server:
    """One server process: its name in the table, its base URL, its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    model: str = ""
    greedy: dict[str, object] = field(default_factory=dict)  # extra body fields for greedy
    _mark: int = field(default=0, repr=False)

    def mark(self) -> None:
        """Remember where the log ends now (`evaluated` reads what comes after)."""
        self._mark = self.log.stat().st_size

    def evaluated(self) -> tuple[int, int] | None:
        """(prefix reused, prompt tokens evaluated) of the llama.cpp server's last request
        since `mark`, or None when it printed no prefix match (it evaluated the whole
        prompt)."""
        with self.log.open("rb") as text:
            text.seek(self._mark)
            found = _REMAINING.findall(text.read().decode(errors="replace"))
        return (int(found[-1][0]), int(found[-1][1])) if found else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cores(count: int | None) -> frozenset[int]:
    """The first `count` cores this process may run on (None: all of them)."""
    allowed = sorted(os.sched_getaffinity(0))
    return frozenset(allowed[:count] if count else allowed)


def start_llmos(name: str, folder: Path, on: frozenset[int], *options: str) -> Server:
    """`llmos serve OPTIONS` (the plain default model) on a free port, on cores `on` (its
    engines compute with one thread per core it may run on)."""
    log = folder / f"{name}.log"
    argv = [sys.executable, "-m", "llmos_grammar.cli.main", "serve", "--port", "0", *options]
    return Server(name, _spawn(argv, log, on), log)


def start_llamacpp(name: str, folder: Path, on: frozenset[int], gguf: Path, n_ctx: int) -> Server:
    """`python -m llama_cpp.server --model GGUF` on a free port, on cores `on`, one thread
    per core as ours; requests wait for the one running instead of interrupting it."""
    log = folder / f"{name}.log"
    port = free_port()
    threads = str(len(on))
    argv = [
        *(sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)),
        *("--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)),
        *("--n_threads", threads, "--n_threads_batch", threads, "--verbose", "True"),
        # by default a waiting request cuts the running stream short ([DONE] mid-answer):
        # then concurrent clients would get less work done, not the same requests answered
        *("--interrupt_requests", "False"),
    ]
    server = Server(name, _spawn(argv, log, on), log)
    server.url = f"http://127.0.0.1:{port}"
    server.greedy = {"repeat_penalty": 1.0}  # its default 1.1 changes greedy replies
    return server


def _spawn(argv: list[str], log: Path, on: frozenset[int]) -> subprocess.Popen[bytes]:
    def pin() -> None:
        os.sched_setaffinity(0, on)

    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin
        )


def wait_ready(server: Server, deadline_s: float = START_S) -> None:
    """Until the server answers GET /v1/models (its URL read from its log when it chose its
    own port); its first model's id is kept. RuntimeError with the log's tail otherwise."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {_tail(server.log)}")
        if not server.url:
            found = re.search(r"listening on (http://\S+?)/v1", server.log.read_text("utf-8"))
            server.url = found.group(1) if found else ""
        if server.url and _models(server):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not start within {deadline_s:g} s: {_tail(server.log)}")


def _models(server: Server) -> bool:
    import json

    try:
        with urllib.request.urlopen(server.url + "/v1/models", timeout=10) as answer:
            data = json.loads(answer.read())
    except (OSError, urllib.error.URLError, ValueError):
        return False
    server.model = str(data["data"][0]["id"])
    return True


def _tail(log: Path) -> str:
    return log.read_text("utf-8", errors="replace")[-3000:]
