"""`llmos serve` side by side with llama-cpp-python's own OpenAI server, in one run.

Three servers start at once on 127.0.0.1: `llmos serve` on the plain default
model (engine `--engine`, llamacpp by default: the same GGUF through the same
library), the same with `--no-cache-reuse`, and `python -m llama_cpp.server
--model <the same GGUF>` with as many threads. Every request goes through the
OpenAI SDK, greedy, streamed; the two servers' runs are interleaved (the order
alternates) so the machine's load affects both alike, and the load average is
printed for each part.

1. Throughput at 1, 4, 8 and 16 concurrent clients, each sending `--requests`
   plain chats one after another (`--max-tokens` each): completion tokens per
   second over the wall time, p50 and p99 time to first token.
2. A 10-turn conversation re-sent whole each turn by a stateless client (each
   server continues its own replies): time to first token per turn with cache
   reuse, with reuse off, and on llama.cpp's server (which reuses the longest
   prefix of its one context). Target: turn 10 at least 5x faster with reuse.
3. A client-side tool round trip (a named tool_choice, then the tool's result
   with tool_choice auto): the prompt tokens the second request prefilled (ours:
   prompt minus cached tokens from `usage`; llama.cpp's: the prefix-match line of
   its log).

Greedy on both: temperature 0, and for llama.cpp's server `repeat_penalty: 1.0`
(its default, 1.1, changes greedy replies); its requests wait for the running one
(`--interrupt_requests False`) instead of cutting it short. `--cores N` pins every
server to N cores with one thread each: on a machine busy with other work, the
threads of one product wait on each other and both servers slow down many times.

    python benchmarks/bench_serve.py [--clients 1,4,8,16] [--requests 4] [--max-tokens 64]
        [--turns 10] [--engine llamacpp] [--cores N] [--parts throughput,conversation,tools]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from host import cpu_name  # noqa: E402
from serve_clients import Count, Level, Timed, client, run_level, stream_chat  # noqa: E402
from serve_procs import Server, cores, start_llamacpp, start_llmos, wait_ready  # noqa: E402

if TYPE_CHECKING:
    import openai
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionMessageParam,
        ChatCompletionToolChoiceOptionParam,
        ChatCompletionToolParam,
    )

PROMPTS = [
    "Write a short poem about the sea.",
    "Explain what a hash table is.",
    "Give me three tips for learning to cook.",
    "Describe a sunrise over the mountains.",
    "What makes a good cup of tea?",
    "Tell me a story about a lost robot.",
    "Why is the sky blue?",
    "List some uses of a paperclip.",
    "How do bees make honey?",
    "Describe your ideal weekend.",
    "What is the difference between weather and climate?",
    "Write a letter to a friend about a trip.",
    "Explain how a bicycle works.",
    "What should I pack for a day at the beach?",
    "Describe the taste of a lemon.",
    "Why do cats purr?",
]
QUESTIONS = [
    "What is 12 times 7?",
    "Add 100 to that.",
    "What is the square root of 144?",
    "Name three primary colours.",
    "What is 2 to the power of 10?",
    "Which planet is closest to the sun?",
    "What is 15 percent of 80?",
    "How many days are in a leap year?",
    "What is 9 times 9?",
    "Sum the numbers from 1 to 10.",
]
SYSTEM = "You are a helpful assistant. Answer in a few sentences."
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
NAMED: ChatCompletionToolChoiceOptionParam = {
    "type": "function",
    "function": {"name": "get_weather"},
}
N_CTX = 4096  # llama.cpp's context: room for the whole conversation


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,8,16", help="concurrent clients per level")
    parser.add_argument("--requests", type=int, default=4, help="chats each client sends")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every chat")
    parser.add_argument("--turns", type=int, default=10, help="turns of the conversation")
    parser.add_argument("--engine", default="llamacpp", help="the engine of llmos serve")
    parser.add_argument(
        "--parts", default="throughput,conversation,tools", help="which parts to run, in order"
    )
    parser.add_argument(
        "--cores",
        type=int,
        help="pin every server to this many cores, one thread each (default: all)",
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    from llmos_grammar.models import default_gguf_path, load_tokenizer

    tokenizer = load_tokenizer()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    batch = str(max(levels))
    on = cores(args.cores)
    engine = ("--engine", args.engine)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        ours = start_llmos("llmos serve", folder, on, *engine, "--batch", batch)
        off = start_llmos("llmos serve, reuse off", folder, on, *engine, "--no-cache-reuse")
        theirs = start_llamacpp("llama_cpp.server", folder, on, default_gguf_path(), N_CTX)
        servers = [ours, off, theirs]
        try:
            for server in servers:
                wait_ready(server)
            for server in servers:  # the first request of a server pays for warming it
                stream_chat(client(server.url), server.model, [_user("Hello")], 4, server.greedy)
            say(f"# llmos serve benchmark: {machine()}")
            say(f"engine of llmos serve: {args.engine}; each server pinned to cores {sorted(on)}")
            say("with one thread per core\n")
            parts: dict[str, Callable[[], None]] = {
                "throughput": lambda: throughput(
                    ours, theirs, levels, args.requests, args.max_tokens, count
                ),
                "conversation": lambda: conversation(servers, args.turns, args.max_tokens),
                "tools": lambda: tool_round_trip(servers),
            }
            for part in args.parts.split(","):
                parts[part]()
        finally:
            for server in servers:
                server.stop()
    return 0


def throughput(
    ours: Server, theirs: Server, levels: Sequence[int], per: int, max_tokens: int, count: Count
) -> None:
    say(f"## Throughput: plain chat, greedy, max_tokens {max_tokens}, {per} chats per client")
    say(f"load average before: {load()}\n")
    say("| clients | server | requests | tokens | tokens/s | TTFT p50 (s) | TTFT p99 (s) |")
    say("|---:|---|---:|---:|---:|---:|---:|")
    for k, clients in enumerate(levels):
        pair = (ours, theirs) if k % 2 == 0 else (theirs, ours)
        found: dict[str, Level] = {}
        for server in pair:
            api = client(server.url)
            found[server.name] = run_level(
                api, server.model, PROMPTS, clients, per, max_tokens, count, server.greedy
            )
        for server in (ours, theirs):
            level = found[server.name]
            say(
                f"| {clients} | {server.name} | {level.requests} | {level.tokens} "
                f"| {level.tokens_per_s:.1f} "
                f"| {level.ttft(50):.2f} | {level.ttft(99):.2f} |"
            )
    say(f"\nload average after: {load()}\n")


def conversation(servers: Sequence[Server], turns: int, max_tokens: int) -> None:
    """Each server holds its own conversation (its own replies sent back each turn)."""
    say(f"## A {turns}-turn conversation re-sent each turn (max_tokens {max_tokens})")
    say(f"load average before: {load()}\n")
    histories: dict[str, list[ChatCompletionMessageParam]] = {
        s.name: [{"role": "system", "content": SYSTEM}] for s in servers
    }
    rows: list[tuple[int, dict[str, Timed], dict[str, str]]] = []
    for turn in range(1, turns + 1):
        question = QUESTIONS[(turn - 1) % len(QUESTIONS)]
        order = list(servers[turn % len(servers) :]) + list(servers[: turn % len(servers)])
        timed: dict[str, Timed] = {}
        reused: dict[str, str] = {}
        for server in order:
            history = histories[server.name]
            history.append(_user(question))
            server.mark()
            done = stream_chat(client(server.url), server.model, history, max_tokens, server.greedy)
            history.append({"role": "assistant", "content": done.text})
            timed[server.name] = done
            reused[server.name] = _reused(server, done)
        rows.append((turn, timed, reused))
    names = [s.name for s in servers]
    say("| turn | " + " | ".join(f"TTFT {n} (s)" for n in names) + " | reuse vs off |")
    say("|---:|" + "---:|" * len(names) + "---:|")
    for turn, timed, _ in rows:
        cells = " | ".join(f"{timed[n].ttft_s:.3f}" for n in names)
        say(f"| {turn} | {cells} | {timed[names[1]].ttft_s / timed[names[0]].ttft_s:.1f}x |")
    say("\nprompt tokens reused / prompt tokens, per turn:")
    for turn, _, reused in rows:
        say(f"  turn {turn}: " + "; ".join(f"{n} {reused[n]}" for n in names))
    say(f"\nload average after: {load()}\n")


def _reused(server: Server, done: Timed) -> str:
    """'cached/prompt' of a request: from usage (ours) or the llama.cpp server's log."""
    if done.cached_tokens is not None and done.prompt_tokens is not None:
        return f"{done.cached_tokens}/{done.prompt_tokens}"
    evaluated = server.evaluated()
    if evaluated is None:
        return f"0/{done.prompt_tokens if done.prompt_tokens is not None else '?'}"
    hit, rest = evaluated
    return f"{hit}/{hit + rest}"


def tool_round_trip(servers: Sequence[Server]) -> None:
    """The first request must call get_weather (a named tool_choice); the second sends the
    call and its result back with tool_choice auto, as agent loops do once the call is made."""
    say("## A client-side tool round trip: what the second request prefilled")
    say(f"load average before: {load()}\n")
    say("| server | prompt tokens | prefilled | reused | the call |")
    say("|---|---:|---:|---:|---|")
    for server in servers:
        prompt, prefilled, call = _round_trip(client(server.url), server, "auto")
        say(f"| {server.name} | {prompt} | {prefilled} | {prompt - prefilled} | {call} |")
    say(f"\nload average after: {load()}\n")


def _round_trip(
    api: openai.OpenAI, server: Server, then: ChatCompletionToolChoiceOptionParam
) -> tuple[int, int, str]:
    """(prompt tokens, prefilled tokens) of the request that sends the tool's result back
    with tool_choice `then`, and the call the first request made."""
    from openai.types.chat import ChatCompletionMessageFunctionToolCall

    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": SYSTEM},
        _user("What is the weather in Paris right now?"),
    ]
    first = _tool_chat(api, server, messages, NAMED, 64)
    message = first.choices[0].message
    calls = [
        c for c in message.tool_calls or () if isinstance(c, ChatCompletionMessageFunctionToolCall)
    ]
    if len(calls) != 1:
        raise RuntimeError(f"{server.name} made {len(calls)} tool calls, not one: {message}")
    sent = message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"})
    sent.setdefault("content", "")  # llama.cpp's chat template reads it
    messages.append(sent)  # type: ignore[arg-type]
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": "Sunny, 21 C."})
    server.mark()
    usage = _tool_chat(api, server, messages, then, 32).usage
    if usage is None:
        raise RuntimeError(f"{server.name} reported no usage")
    details = usage.prompt_tokens_details
    if details is not None and details.cached_tokens is not None:
        prefilled = usage.prompt_tokens - details.cached_tokens
    else:
        evaluated = server.evaluated()
        prefilled = usage.prompt_tokens if evaluated is None else evaluated[1]
    function = calls[0].function
    return usage.prompt_tokens, prefilled, f"`{function.name}({function.arguments})`"


def _tool_chat(
    api: openai.OpenAI,
    server: Server,
    messages: list[ChatCompletionMessageParam],
    choice: ChatCompletionToolChoiceOptionParam,
    max_tokens: int,
) -> ChatCompletion:
    return api.chat.completions.create(
        model=server.model,
        messages=messages,
        tools=[WEATHER],
        tool_choice=choice,
        parallel_tool_calls=False,
        max_tokens=max_tokens,
        temperature=0,
        extra_body=server.greedy,
    )


def _user(text: str) -> ChatCompletionMessageParam:
    return {"role": "user", "content": text}


def machine() -> str:
    """The CPU and the cores this run may use."""
    return f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f} (1, 5, 15 min)"


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
