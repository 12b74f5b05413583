"""The load test's pieces: a tiny random model on disk, specs for it, clients, the process tree.

`llmos serve` loads models by name or folder, so the tiny random Llama of the
runtime tests is saved as a Hugging Face folder (the default model's tokenizer
and chat template) and the specs name that folder. `calc` forces a program
whose sandboxed output is known, `sleep` one that sleeps far past any test's
wait (so a client can leave while it runs), `chat` is examples/chat on the
tiny model; the model is also served plain, under its folder's path.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import openai
    from openai import AsyncStream
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "default.yaml"
CALC_CODE = "print(6 * 7)\n"
CALC_OUTPUT = "42\n"
SLEEP_CODE = "import time\ntime.sleep(60)\n"


def save_tiny_model(folder: Path) -> Path:
    """The runtime tests' tiny random Llama with the default model's tokenizer, as a folder."""
    from tests.test_runtime_helpers import tiny_model

    lm = tiny_model()
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def action_spec(name: str, model: Path, code: str, policy: Path = POLICY) -> str:
    """A spec whose code is `code` (forced by its grammar), run by the python action, whose
    output is injected; then the model writes a few tokens of its own."""
    return f"""llmos: 1
name: {name}
description: Forces one program, runs it in the sandbox, injects its output.
model: {json.dumps(str(model))}
policy: {json.dumps(str(policy))}
prompt:
  user: "{{task}}"
  chat_template: true
  assistant_prefix: "[CODE]"
limits: {{max_tokens: 64, max_actions: 1, wall_s: 120}}
start: code
states:
  code:
    type: grammar
    lark: |
      start: {json.dumps(code)}
    open: "\\n"
    close: "[/CODE]"
    max_tokens: 32
    next: run
  run:
    type: action
    action: python
    input: code
    output: "\\n[OUTPUT]\\n{{stdout}}[/OUTPUT]\\n"
    next: answer
  answer:
    type: text
    max_tokens: 6
    eos: end
  end: {{type: final}}
"""


def chat_spec(model: Path) -> str:
    """examples/chat/spec.yaml on `model`, its policy named by its absolute path."""
    text = (ROOT / "examples" / "chat" / "spec.yaml").read_text()
    text = text.replace("model: smollm2-135m-instruct", f"model: {json.dumps(str(model))}")
    return text.replace("policy: ../../policies/default.yaml", f"policy: {json.dumps(str(POLICY))}")


def write_specs(folder: Path, model: Path) -> list[Path]:
    """The tiny model's specs (calc, sleep, chat) in `folder`, in that order; `sleep`'s policy
    gives its action 120 s, so only a cancel or a drain ends it in a test's time."""
    patient = folder / "patient.yaml"
    patient.write_text(POLICY.read_text().replace("timeout_s: 10", "timeout_s: 120", 1))
    texts = {
        "calc": action_spec("calc", model, CALC_CODE),
        "sleep": action_spec("sleep", model, SLEEP_CODE, patient),
        "chat": chat_spec(model),
    }
    paths = []
    for name, text in texts.items():
        path = folder / f"{name}.yaml"
        path.write_text(text)
        paths.append(path)
    return paths


# ---- the server's process tree -----------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children, ...), read from /proc."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in _tasks(parent):
            try:
                text = (Path("/proc") / str(parent) / "task" / task / "children").read_text()
            except OSError:  # the task or the process ended meanwhile
                continue
            for child in map(int, text.split()):
                if child not in found and _alive(child):
                    found.append(child)
                    todo.append(child)
    return found


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


# ---- clients --------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {deadline_s} s"
        time.sleep(0.05)


@dataclass(frozen=True)
class Outcome:
    """What one client saw of one request: its answer (streamed or not) or its error."""

    index: int
    model: str
    stream: bool
    max_tokens: int | None
    ids: tuple[str, ...] = ()  # the response's id, as each chunk carried it
    models: tuple[str, ...] = ()  # the model each chunk (or the response) named
    content: str = ""
    finish_reasons: tuple[str | None, ...] = ()  # one per chunk that had a finish_reason
    llmos: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    usages: tuple[tuple[int, int, int], ...] = ()  # (prompt, completion, cached) per usage seen
    error_status: int | None = None  # an error answer's HTTP status (0: an error chunk)
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_status is None


async def ask(
    api: openai.AsyncOpenAI,
    index: int,
    model: str,
    *,
    stream: bool,
    max_tokens: int | None,
    text: str,
    accepted: asyncio.Event | None = None,
) -> Outcome:
    """One chat request through the SDK; every answer or error becomes an `Outcome`.
    `accepted` is set at a stream's first chunk: the server took the request."""
    import openai

    base = Outcome(index, model, stream, max_tokens)
    limit = openai.omit if max_tokens is None else max_tokens
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": text}]
    try:
        if stream:
            chunks = await api.chat.completions.create(
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=limit,
            )
            return await _streamed(base, chunks, accepted or asyncio.Event())
        reply = await api.chat.completions.create(model=model, messages=messages, max_tokens=limit)
    except openai.APIStatusError as exc:
        return replace(base, error_status=exc.status_code, error_code=_code(exc))
    except openai.APIError as exc:  # the error chunk that ends a stream
        return replace(base, error_status=0, error_code=_code(exc))
    return _whole(base, reply)


def _code(exc: openai.APIError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("code") is not None:
            return str(inner["code"])
    return exc.code


def _whole(base: Outcome, reply: ChatCompletion) -> Outcome:
    assert len(reply.choices) == 1 and reply.choices[0].index == 0, reply
    choice = reply.choices[0]
    assert choice.message.role == "assistant", reply
    usage = reply.usage
    assert usage is not None, reply
    extra = getattr(choice.message, "llmos", None) or {}
    return replace(
        base,
        ids=(reply.id,),
        models=(reply.model,),
        content=choice.message.content or "",
        finish_reasons=(choice.finish_reason,),
        llmos={k: list(v) for k, v in extra.items()},
        usages=(_usage(usage),),
    )


async def _streamed(
    base: Outcome, chunks: AsyncStream[ChatCompletionChunk], accepted: asyncio.Event
) -> Outcome:
    ids, models, pieces, finishes, usages = [], [], [], [], []
    records: dict[str, list[dict[str, object]]] = {}
    async for chunk in chunks:
        accepted.set()
        ids.append(chunk.id)
        models.append(chunk.model)
        assert chunk.object == "chat.completion.chunk", chunk
        if chunk.usage is not None:
            assert not chunk.choices, chunk  # the usage chunk has no choices
            usages.append(_usage(chunk.usage))
        for choice in chunk.choices:
            assert choice.index == 0, chunk
            pieces.append(choice.delta.content or "")
            for kind, items in (getattr(choice.delta, "llmos", None) or {}).items():
                records.setdefault(kind, []).extend(items)
            if choice.finish_reason is not None:
                finishes.append(choice.finish_reason)
    return replace(
        base,
        ids=tuple(ids),
        models=tuple(models),
        content="".join(pieces),
        finish_reasons=tuple(finishes),
        llmos=records,
        usages=tuple(usages),
    )


def _usage(usage: CompletionUsage) -> tuple[int, int, int]:
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None and details.cached_tokens else 0
    return (usage.prompt_tokens, usage.completion_tokens, cached)


# ---- metrics ----------------------------------------------------------------------------


def scrape(url: str) -> str:
    """GET /metrics (Prometheus text)."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=60) as answer:
        return str(answer.read().decode())


def series(text: str, name: str, **labels: str) -> float:
    """One series' value in Prometheus' text format (0.0 when a labelled one is absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        base, _, rest = key.partition("{")
        if base == name and ",".join(sorted(rest.rstrip("}").split(","))) == want:
            return float(value)
    if labels:
        return 0.0
    raise AssertionError(f"no series {name} in the metrics:\n{text[:2000]}")


def idle(url: str) -> bool:
    """No running row, nothing queued, no request in flight (read from /metrics)."""
    text = scrape(url)
    names = ("llmos_running_rows", "llmos_queue_depth", "llmos_requests_in_flight")
    return all(series(text, name) == 0 for name in names)


# ---- `llmos serve` on one core -------------------------------------------------------------


def main() -> int:
    """`python -m tests.serve_load_support ARGS`: `llmos ARGS` pinned to one core.

    The engines compute with one thread per core the process may run on; on a machine
    busy with other work, threads of one matrix product wait on each other (llama.cpp's
    two threads took seconds a token here, one thread 30 ms), and the calculator's
    120 s wall clock ran out under 32 clients. One core keeps the test's time bounded.
    """
    import sys

    from llmos_grammar.cli.main import main as llmos

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    return llmos(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
