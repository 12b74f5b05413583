"""Timed OpenAI-SDK requests for bench_serve.py: streamed chats, concurrent clients, percentiles.

Every request is streamed, so the time to first token is the time until the first
chunk that carries text (or a tool call); its tokens are counted by re-tokenizing
the reply with the model's tokenizer, the same count for every server (llama.cpp's
server reports no usage in a stream).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletionMessageParam

Count = Callable[[str], int]


@dataclass(frozen=True)
class Timed:
    """One streamed request: when its first text came, when it ended, what it said."""

    ttft_s: float
    total_s: float
    text: str
    prompt_tokens: int | None  # from the usage chunk, when the server sends one
    cached_tokens: int | None


def client(url: str) -> openai.OpenAI:
    import openai

    return openai.OpenAI(base_url=url + "/v1", api_key="-", max_retries=0, timeout=1800)


def stream_chat(
    api: openai.OpenAI,
    model: str,
    messages: Sequence[ChatCompletionMessageParam],
    max_tokens: int,
    extra: Mapping[str, object] | None = None,
) -> Timed:
    """One greedy chat, streamed (`extra`: body fields a server needs for greedy); `Timed`
    from the client's side."""
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    prompt = cached = None
    stream = api.chat.completions.create(
        model=model,
        messages=list(messages),
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra,
    )
    for chunk in stream:
        if chunk.usage is not None:
            prompt = chunk.usage.prompt_tokens
            details = chunk.usage.prompt_tokens_details
            cached = details.cached_tokens if details is not None else None
        for choice in chunk.choices:
            if choice.delta.content:
                first = time.perf_counter() if first is None else first
                pieces.append(choice.delta.content)
    ended = time.perf_counter()
    return Timed((first or ended) - started, ended - started, "".join(pieces), prompt, cached)


@dataclass(frozen=True)
class Level:
    """Throughput at one number of concurrent clients."""

    clients: int
    requests: int
    tokens: int
    wall_s: float
    ttfts: tuple[float, ...]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    def ttft(self, q: float) -> float:
        return percentile(self.ttfts, q)


def run_level(
    api: openai.OpenAI,
    model: str,
    prompts: Sequence[str],
    clients: int,
    per_client: int,
    max_tokens: int,
    count: Count,
    extra: Mapping[str, object] | None = None,
) -> Level:
    """`clients` threads, each sending `per_client` chats one after another (prompts taken
    in turn); completion tokens over the wall time from the first send to the last end."""

    def one_client(k: int) -> list[Timed]:
        done = []
        for j in range(per_client):
            prompt = prompts[(k * per_client + j) % len(prompts)]
            question: list[ChatCompletionMessageParam] = [{"role": "user", "content": prompt}]
            done.append(stream_chat(api, model, question, max_tokens, extra))
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [t for batch in pool.map(one_client, range(clients)) for t in batch]
    wall = time.perf_counter() - started
    tokens = sum(count(t.text) for t in results)
    return Level(clients, len(results), tokens, wall, tuple(t.ttft_s for t in results))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated; the single value of a one-item list."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
