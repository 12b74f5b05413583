"""The completions request of one segment and the reading of its answer (vLLM's OpenAI API).

A segment is sent as token ids (`prompt` is a list of ints) and read back as
token ids (`return_token_ids`), so the server never re-tokenizes our text. Its
constraint travels as `structured_outputs.grammar` (an llguidance grammar, run
by the server's guidance backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmos_grammar.engines.base import SegmentOutput, SegmentParams
from llmos_grammar.engines.vllm.grammar import lark_for_vllm
from llmos_grammar.errors import ModelError


def completion_body(model: str, ids: Sequence[int], params: SegmentParams) -> dict[str, Any]:
    """The JSON body of a `/v1/completions` request continuing `ids` by one segment."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": list(ids),
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "return_token_ids": True,
        "skip_special_tokens": False,
    }
    if params.top_k > 0:
        body["top_k"] = params.top_k
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if params.stop_ids:
        body["stop_token_ids"] = list(params.stop_ids)
    if params.constraint is not None:
        grammar = lark_for_vllm(params.constraint, params.close)
        body["structured_outputs"] = {"grammar": grammar}
    return body


def read_completion(data: Any, params: SegmentParams) -> SegmentOutput:
    """The segment's token ids and end from a `/v1/completions` answer.

    A segment ended by an end-of-sequence id keeps that id as its last token (the
    server leaves it out of `token_ids` when it is the model's own EOS), so that
    the replay sees the end of the turn as the transformers engine would.
    """
    try:
        choice = data["choices"][0]
        tokens = [int(t) for t in choice["token_ids"]]
        finish = choice.get("finish_reason")
        stop_reason = choice.get("stop_reason")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ModelError(f"vLLM answered without token ids ({exc!r}); is it vLLM >= 0.11?") from exc
    if finish == "length":
        return SegmentOutput(tuple(tokens), "length")
    if finish != "stop":
        raise ModelError(f"vLLM ended a segment with finish_reason {finish!r}")
    eos: int | None
    if isinstance(stop_reason, int):
        eos = stop_reason
    elif stop_reason is None:
        eos = params.stop_ids[0] if params.stop_ids else None
    else:
        eos = None  # a stop string: the token that completed it is the last one
    stop_ids = set(params.stop_ids)
    if eos is not None and not (tokens and tokens[-1] in stop_ids):
        tokens.append(eos)
    return SegmentOutput(tuple(tokens), "stop")


def error_message(status: int, payload: str) -> str:
    """One line for an error answer of the server."""
    import json

    try:
        data = json.loads(payload)
        error = data.get("error", data)
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = payload.strip()
    line = " ".join((message or "no message").split())
    if len(line) > 400:
        line = line[:397] + "..."
    return f"vLLM server error {status}: {line}"
