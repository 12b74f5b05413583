"""The chunks of a streamed request, in OpenAI's order, built event by event.

Chat: the role first, then content deltas, `llmos` deltas, tool calls (index, id and
name, then the arguments in pieces), one chunk with each choice's finish_reason, and
the usage chunk (no choices) when the client asked for it. Completions: text chunks,
the finish_reason, the usage chunk.
"""

from __future__ import annotations

from llmos_grammar.serve.http_shape import Head, llmos_json, usage_json
from llmos_grammar.serve.types import (
    ChoiceDone,
    LlmosDelta,
    ServeEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

ARGUMENT_PIECE = 32  # characters of a tool call's arguments per chunk

Chunk = dict[str, object]


class Chunks:
    """Builds the chunks of one streamed request; remembers what each choice has sent."""

    def __init__(self, head: Head, n: int, include_usage: bool) -> None:
        self.head = head
        self.n = n
        self.include_usage = include_usage
        self.sent_text: dict[int, str] = {}
        self.sent_calls: dict[int, set[int]] = {}

    def opening(self) -> list[Chunk]:
        if self.head.endpoint != "chat":
            return []
        return [self._chunk(i, {"role": "assistant", "content": ""}) for i in range(self.n)]

    def event(self, event: ServeEvent) -> list[Chunk]:
        if isinstance(event, TextDelta):
            return [self._text(event.choice, event.text)] if event.text else []
        if isinstance(event, LlmosDelta):
            return [self._chunk(event.choice, {"llmos": llmos_json([event.record])})]
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event.choice, event.index, event.call)
        if isinstance(event, ChoiceDone):
            return self._done(event)
        return []

    def closing(self, usage: Usage) -> list[Chunk]:
        if not self.include_usage:
            return []
        return [{**self.head.object(chunk=True), "choices": [], "usage": usage_json(usage)}]

    def _text(self, choice: int, text: str) -> Chunk:
        self.sent_text[choice] = self.sent_text.get(choice, "") + text
        return self._chunk(choice, {"content": text})

    def _tool_call(self, choice: int, index: int, call: ToolCall) -> list[Chunk]:
        if self.head.endpoint != "chat":
            return []
        self.sent_calls.setdefault(choice, set()).add(index)
        opening = {"index": index, "id": call.id, "type": "function"}
        chunks = [
            self._chunk(
                choice,
                {"tool_calls": [{**opening, "function": {"name": call.name, "arguments": ""}}]},
            )
        ]
        for start in range(0, len(call.arguments), ARGUMENT_PIECE):
            piece = call.arguments[start : start + ARGUMENT_PIECE]
            chunks.append(
                self._chunk(
                    choice, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                )
            )
        return chunks

    def _done(self, done: ChoiceDone) -> list[Chunk]:
        """Anything of the choice not streamed yet, then its finish_reason."""
        chunks = []
        sent = self.sent_text.get(done.choice, "")
        if len(done.content) > len(sent) and done.content.startswith(sent):
            chunks.append(self._text(done.choice, done.content[len(sent) :]))
        streamed = self.sent_calls.get(done.choice, set())
        for index, call in enumerate(done.tool_calls):
            if index not in streamed:
                chunks += self._tool_call(done.choice, index, call)
        chunks.append(self._chunk(done.choice, {}, done.finish_reason))
        return chunks

    def _chunk(self, choice: int, delta: dict[str, object], finish: str | None = None) -> Chunk:
        if self.head.endpoint == "chat":
            body: dict[str, object] = {"index": choice, "delta": delta}
        else:
            body = {"index": choice, "text": delta.get("content", "")}
            if "llmos" in delta:
                body["llmos"] = delta["llmos"]
        body["logprobs"] = None
        body["finish_reason"] = finish
        chunk: Chunk = {**self.head.object(chunk=True), "choices": [body]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk
