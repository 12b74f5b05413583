"""Client-side tool calls as text: how a call is written, read back from a run, and rendered again.

A call is `<tool_call>`, a newline, `{"name": "NAME", "arguments": ARGS}`, a newline and
`</tool_call>`; several calls are separated by one newline. The grammar of a request
(constrain.py) lets the model write exactly this, so an earlier assistant turn rendered
from its `ToolCall`s (`assistant_text`) is the text the model produced, byte for byte.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from llmos_grammar.serve.types import Message, ToolCall

ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 24


@dataclass(frozen=True)
class ToolSyntax:
    """How calls are written and how tool results are shown to the model.

    `tool_role` is "tool" for a model whose chat template has its own tool turns (it
    mentions `<tool_call>`), else "user": results then come as a user turn of
    `<tool_response>` blocks.
    """

    open_tag: str = "<tool_call>"
    open: str = "\n"
    close: str = "\n</tool_call>"
    separator: str = "\n"
    tool_role: Literal["tool", "user"] = "user"

    def head(self, name: str) -> str:
        """The call's JSON up to its arguments."""
        return _head(json.dumps(name))

    def call_text(self, call: ToolCall) -> str:
        """One whole call as the model writes it."""
        return self.call_text_of(json.dumps(call.name), call.arguments)

    def call_text_of(self, name_json: str, arguments: str) -> str:
        """A call of the name written `name_json` (placeholders in a prompt's example)."""
        return self.open_tag + self.open + _head(name_json) + arguments + "}" + self.close


def _head(name_json: str) -> str:
    return '{"name": ' + name_json + ', "arguments": '


GENERIC = ToolSyntax()
NATIVE = ToolSyntax(tool_role="tool")


def tool_syntax(tokenizer: object) -> ToolSyntax:
    """NATIVE for a tokenizer whose chat template writes `<tool_call>` blocks itself (the
    Hermes and Qwen families), else GENERIC; both write calls the same way."""
    template = getattr(tokenizer, "chat_template", None)
    return NATIVE if isinstance(template, str) and "<tool_call>" in template else GENERIC


def new_call_id() -> str:
    """`call_` and 24 random letters and digits."""
    return "call_" + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def assistant_text(message: Message, syntax: ToolSyntax = GENERIC) -> str:
    """An assistant message as the model wrote it: its content, then its calls."""
    calls = syntax.separator.join(syntax.call_text(c) for c in message.tool_calls)
    return message.content + calls


def tool_results_text(messages: Sequence[Message]) -> str:
    """Consecutive tool messages as one user turn (models without tool turns of their own)."""
    return "\n".join(f"<tool_response>\n{m.content}\n</tool_response>" for m in messages)


def read_call(text: str, syntax: ToolSyntax = GENERIC) -> tuple[str, str] | None:
    """(name, arguments) of one call's whole text as a run wrote it (the open tag is
    optional: a forced prefix may stand in the call's own state); None when the text is
    not a whole call (a run stopped inside it)."""
    body = text.removeprefix(syntax.open_tag)
    if not body.startswith(syntax.open) or not body.endswith(syntax.close):
        return None
    body = body[len(syntax.open) : len(body) - len(syntax.close)]
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    name = data["name"]
    head = syntax.head(name)
    if not body.startswith(head) or not body.endswith("}"):
        return None
    return name, body[len(head) : -1]


class ReplyReader:
    """Reads one run's text, state by state, as it comes: the visible text and the calls.

    `tool_states` are the states a call is written in (their text is never visible),
    `tagged` the states whose text may end with the open tag of a call (held back until
    it is clear whether the tag comes), `visible` the states whose text is content (None:
    every state but the tool states).
    """

    def __init__(
        self,
        syntax: ToolSyntax,
        tool_states: frozenset[str],
        tagged: frozenset[str],
        call_state: str | None,
        visible: frozenset[str] | None = None,
    ) -> None:
        self.syntax = syntax
        self.tool_states = tool_states
        self.tagged = tagged
        self.call_state = call_state
        self.visible = visible
        self.content = ""
        self.calls: list[ToolCall] = []
        self._held = ""  # the end of a tagged state's text that may be a call's open tag
        self._state: str | None = None
        self._call = ""  # the text of the call being written

    def feed(self, state: str, text: str) -> tuple[str, tuple[ToolCall, ...]]:
        """Text the run wrote in `state`: the visible text it adds and the calls it ends."""
        shown, ended = "", tuple[ToolCall, ...]()
        if state != self._state:
            shown, ended = self._leave(entering=state)
            self._state = state
        if state == self.call_state:
            self._call += text
            ended = ended + self._end_call(complete_only=True)
        elif state not in self.tool_states and self._shows(state):
            shown += self._show(state, text)
        self.content += shown
        return shown, ended

    def finish(self) -> tuple[str, tuple[ToolCall, ...]]:
        """The run ended: what was held back, and a last call when it was whole."""
        shown, ended = self._leave(entering=None)
        self.content += shown
        self._state = None
        return shown, ended

    def _shows(self, state: str) -> bool:
        return self.visible is None or state in self.visible

    def _show(self, state: str, text: str) -> str:
        if state not in self.tagged:
            return text
        pending = self._held + text
        keep = _tag_prefix_at_end(pending, self.syntax.open_tag)
        self._held = pending[len(pending) - keep :]
        return pending[: len(pending) - keep]

    def _leave(self, entering: str | None) -> tuple[str, tuple[ToolCall, ...]]:
        """The run moved out of the current state: release or drop the held text."""
        held, self._held = self._held, ""
        if entering == self.call_state and held.endswith(self.syntax.open_tag):
            held = held[: -len(self.syntax.open_tag)]
        ended = self._end_call(complete_only=False) if self._state == self.call_state else ()
        return held, ended

    def _end_call(self, complete_only: bool) -> tuple[ToolCall, ...]:
        found = read_call(self._call, self.syntax)
        if found is None:
            if not complete_only:
                self._call = ""
            return ()
        self._call = ""
        call = ToolCall(new_call_id(), found[0], found[1])
        self.calls.append(call)
        return (call,)


def _tag_prefix_at_end(text: str, tag: str) -> int:
    """The length of the longest end of `text` that begins `tag` (the whole tag included)."""
    for size in range(min(len(tag), len(text)), 0, -1):
        if tag.startswith(text[len(text) - size :]):
            return size
    return 0


def read_all(reader: ReplyReader, parts: Iterable[tuple[str, str]]) -> ReplyReader:
    """Feed every (state, text) of a finished run, then finish; the reader, for its fields."""
    for state, text in parts:
        reader.feed(state, text)
    reader.finish()
    return reader
