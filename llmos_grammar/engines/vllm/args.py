"""`--engine-arg KEY=VALUE` for vLLM: our own keys, the rest passed to the vLLM server."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llmos_grammar.errors import ModelError

# Keys the client reads itself; every other key is a `vllm serve` option.
CLIENT_KEYS = {
    "url": "a running vLLM OpenAI-compatible server (http://host:port); none is started",
    "python": "the Python of the environment with vLLM (default: .venv-vllm/bin/python)",
    "startup_timeout_s": "how long to wait for a started server to answer (default 900)",
    "request_timeout_s": "how long one segment request may take (default 600)",
    "api_key": "the bearer token of a server started with --api-key",
}


def parse_engine_args(items: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` strings as a dict; keys may use dashes or underscores."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise ModelError(
                f"engine argument {item!r} is not KEY=VALUE (e.g. tensor_parallel_size=2)"
            )
        out[key] = value
    return out


@dataclass(frozen=True)
class VLLMOptions:
    """Where the server is (or how to start it) and the options it is started with."""

    url: str | None = None
    python: str | None = None
    startup_timeout_s: float = 900.0
    request_timeout_s: float = 600.0
    api_key: str | None = None
    server_args: tuple[tuple[str, str], ...] = ()


def _seconds(key: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ModelError(f"engine argument {key}={value!r}: give a number of seconds") from None
    if seconds <= 0:
        raise ModelError(f"engine argument {key}={value!r}: must be positive")
    return seconds


def vllm_options(args: Mapping[str, str]) -> VLLMOptions:
    """Split engine arguments into the client's own and the server's."""
    server = tuple((k, v) for k, v in args.items() if k not in CLIENT_KEYS)
    url = args.get("url") or None
    if url is not None and server:
        names = ", ".join(k for k, _ in server)
        raise ModelError(
            f"engine argument(s) {names} configure a server llmos starts; with url= give them "
            "to the server you run"
        )
    if url is not None and not url.startswith(("http://", "https://")):
        raise ModelError(f"engine argument url={url!r}: give http://host:port")
    return VLLMOptions(
        url=url.rstrip("/") if url else None,
        python=args.get("python") or None,
        startup_timeout_s=_seconds("startup_timeout_s", args.get("startup_timeout_s", "900")),
        request_timeout_s=_seconds("request_timeout_s", args.get("request_timeout_s", "600")),
        api_key=args.get("api_key") or None,
        server_args=server,
    )


def default_dtype(requested: str) -> str:
    """The model's dtype on the server: as asked, else float32 without a GPU (as our
    transformers engine on CPU), else vLLM's own choice."""
    if requested != "auto":
        return requested
    return "auto" if shutil.which("nvidia-smi") else "float32"


def server_command(
    python: str, model: str, port: int, options: VLLMOptions, dtype: str
) -> list[str]:
    """The command line that starts vLLM's OpenAI-compatible server for `model`.

    Structured outputs go through the guidance backend (llguidance, as our own
    constraints). `enforce_eager` is on by default: graph capture costs minutes of
    start-up and gains little for the small models this runs on CPU.
    """
    args = dict(options.server_args)
    args.setdefault("dtype", dtype)
    args.setdefault("enforce_eager", "true")
    args.setdefault("structured_outputs_config", '{"backend": "guidance"}')
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    command += ["--host", "127.0.0.1", "--port", str(port), "--served-model-name", "llmos"]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        lowered = value.strip().lower()
        if lowered in ("true", ""):
            command.append(flag)
        elif lowered == "false":
            command.append("--no-" + key.replace("_", "-"))
        else:
            command += [flag, value]
    return command
