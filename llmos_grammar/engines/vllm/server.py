"""A vLLM OpenAI-compatible server: started from the vLLM environment, or one already running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any

from llmos_grammar.engines.vllm.args import VLLMOptions, server_command
from llmos_grammar.engines.vllm.protocol import error_message
from llmos_grammar.errors import ModelError

VENV = ".venv-vllm"
NOT_INSTALLED = (
    "vLLM is not installed: run `bash setup.sh --vllm` (it creates .venv-vllm), pass "
    "--engine-arg python=PATH of a Python with vllm, or --engine-arg url=http://HOST:PORT "
    "of a running vLLM server"
)


def find_python(options: VLLMOptions) -> str:
    """The Python that runs vLLM: `python=`, else $LLMOS_VLLM_PYTHON, else .venv-vllm next
    to the project or in the working folder."""
    if options.python:
        if Path(options.python).is_file() and _has_vllm(options.python):
            return options.python
        raise ModelError(f"engine argument python={options.python}: no vllm there. {NOT_INSTALLED}")
    root = Path(__file__).resolve().parents[3]
    candidates = [os.environ.get("LLMOS_VLLM_PYTHON")]
    candidates += [str(base / VENV / "bin" / "python") for base in (root, Path.cwd())]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and _has_vllm(candidate):
            return candidate
    raise ModelError(NOT_INSTALLED)


def _has_vllm(python: str) -> bool:
    site = subprocess.run(
        [python, "-c", "import importlib.util,sys; sys.exit(not importlib.util.find_spec('vllm'))"],
        capture_output=True,
        timeout=60,
    )
    return site.returncode == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, body: Any = None, timeout: float = 30.0, api_key: str | None = None) -> Any:
    """GET (no body) or POST JSON; the decoded answer. Errors as ModelError (one line)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data)
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise ModelError(error_message(exc.code, exc.read().decode("utf-8", "replace"))) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"cannot reach the vLLM server at {url}: {exc}") from exc


class VLLMServer:
    """The server's address and model name; owns the process when it started one."""

    def __init__(
        self,
        url: str,
        model: str,
        options: VLLMOptions,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.url = url
        self.model = model
        self.options = options
        self.process = process
        self.log: Path | None = None
        if process is not None:
            self._finalizer = weakref.finalize(self, _stop, process)

    def close(self) -> None:
        """Stop the server when this process started it."""
        if self.process is not None:
            self._finalizer()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def connect(options: VLLMOptions, model_folder: str, dtype: str) -> VLLMServer:
    """The server of `options.url`, or a new one for `model_folder` once it answers."""
    if options.url is not None:
        models = http_json(f"{options.url}/v1/models", api_key=options.api_key)
        names = [m.get("id") for m in models.get("data", [])]
        if not names:
            raise ModelError(f"the vLLM server at {options.url} serves no model")
        return VLLMServer(options.url, str(names[0]), options)
    python = find_python(options)
    port = free_port()
    command = server_command(python, model_folder, port, options, dtype)
    log = Path(tempfile.mkstemp(prefix="llmos-vllm-", suffix=".log")[1])
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")  # GiB of KV cache on CPU builds
    env.setdefault("VLLM_MAX_STOP_STRINGS", "256")  # triggers of a state (default cap: 4)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = VLLMServer(f"http://127.0.0.1:{port}", "llmos", options, process)
    server.log = log
    _wait_ready(server, options.startup_timeout_s)
    return server


def _wait_ready(server: VLLMServer, timeout_s: float) -> None:
    """Poll /health until the server answers; a server that exits is reported in one line."""
    assert server.process is not None and server.log is not None
    deadline = time.monotonic() + timeout_s
    shown = time.monotonic()
    while True:
        code = server.process.poll()
        if code is not None:
            server.close()
            raise ModelError(f"the vLLM server did not start: {failure_line(server.log)}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            server.close()
            raise ModelError(
                f"the vLLM server did not answer within {timeout_s:g} s "
                f"(engine argument startup_timeout_s); its log: {server.log}"
            )
        if time.monotonic() - shown > 30:
            print(f"llmos: waiting for the vLLM server (log: {server.log})", file=sys.stderr)
            shown = time.monotonic()
        time.sleep(0.5)


def failure_line(log: Path) -> str:
    """The line of a server log that says why it stopped (an argument or loading error)."""
    lines = [line.strip() for line in log.read_text("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    for marker in ("unrecognized arguments", "error: argument", "invalid choice"):
        for line in reversed(lines):
            if marker in line:
                return line.split("error: ", 1)[-1] + " (an engine argument vLLM does not know)"
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[-400:] + f" (log: {log})"
    return (lines[-1][-400:] if lines else "no output") + f" (log: {log})"
