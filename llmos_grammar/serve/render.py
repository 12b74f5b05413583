"""Messages -> the exact prompt ids of a served row; replies sent back as the ids that made them.

A conversation renders through the spec's prompt (its system text, user template
and the model's chat template) as pieces: the template's text trusted, every
message's content not (see runtime/pieces.py). Each assistant message splits
the rendering: the text before it is encoded on its own, then the reply, then
the text after it. A reply this server produced after exactly these ids is not
re-tokenized: `known` gives the ids the row held (`Continuation`), so the
rendering equals the row that produced it and a kept row continues without a
re-prefill. Where a reply ended with the end-of-turn token, the template's own
end of turn after it is left out (the row has it already), as a session does.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from llmos_grammar.errors import SpecError
from llmos_grammar.ir import Prompt
from llmos_grammar.libtypes.hf import Tokenizer
from llmos_grammar.runtime.pieces import Piece, encode_untrusted, without_start
from llmos_grammar.runtime.prompt import (
    encode,
    render_turns,
    render_user,
    user_turn_pieces,
    uses_template,
    value_mark,
    value_place,
)
from llmos_grammar.serve.toolcalls import GENERIC, ToolSyntax, assistant_text, tool_results_text
from llmos_grammar.serve.types import BadRequest, Message

SYSTEM_JOIN = "\n\n"  # between the parts of the system turn


@dataclass(frozen=True)
class Continuation:
    """How a reply continued the ids before it: the last `healed` ids were re-tokenized
    with the reply's start (token healing), then came `ids`."""

    healed: int
    ids: tuple[int, ...]


# (the ids before an assistant message, the message) -> how the server produced it, or None
Known = Callable[[Sequence[int], Message], "Continuation | None"]


@dataclass(frozen=True)
class Rendered:
    """A request's prompt ids, and how many assistant messages were given as their own ids."""

    ids: tuple[int, ...]
    matched: int = 0


def digest(ids: Sequence[int]) -> bytes:
    """A key for exactly these ids (the ids before a reply)."""
    return hashlib.sha256(array("q", ids).tobytes()).digest()


def render_text(tokenizer: Tokenizer, text: str) -> Rendered:
    """A raw prompt (/v1/completions): its ids as plain text, no template."""
    return Rendered(tuple(encode_untrusted(tokenizer, text)))


def render_chat(
    prompt: Prompt,
    tokenizer: Tokenizer,
    messages: Sequence[Message],
    *,
    tools_prompt: str = "",
    syntax: ToolSyntax = GENERIC,
    known: Known | None = None,
    eos_ids: frozenset[int] = frozenset(),
) -> Rendered:
    """The prompt ids of a chat request (see the module docstring). The system turn is the
    spec's system text, the leading system messages and `tools_prompt`; user turns go
    through the spec's user template; assistant turns are written with their calls as the
    model writes them (toolcalls.py); tool results are tool turns, or one user turn per
    run of them where the template has none (`syntax`). BadRequest when the model's chat
    template refuses the conversation."""
    if not messages:
        raise BadRequest("a chat request needs at least one message", param="messages")
    lead = 0
    while lead < len(messages) and messages[lead].role == "system":
        lead += 1
    system = [m.content for m in messages[:lead]] + ([tools_prompt] if tools_prompt else [])
    turns = _turns(messages[lead:], syntax)
    if uses_template(prompt, tokenizer):
        pieces, replies = _templated(prompt, tokenizer, system, turns)
    else:
        pieces, replies = _untemplated(prompt, system, turns)
    return _assemble(tokenizer, pieces, replies, known, eos_ids)


@dataclass(frozen=True)
class _Turn:
    """A turn in a role the template knows: its untrusted text, whether the spec's user
    template wraps it, and the assistant message it is (None for other turns)."""

    role: str
    text: str
    user: bool = False
    reply: Message | None = None


def _turns(messages: Sequence[Message], syntax: ToolSyntax) -> list[_Turn]:
    out: list[_Turn] = []
    k = 0
    while k < len(messages):
        message = messages[k]
        if message.role == "tool" and syntax.tool_role == "user":
            end = k
            while end < len(messages) and messages[end].role == "tool":
                end += 1
            out.append(_Turn("user", tool_results_text(messages[k:end])))
            k = end
            continue
        if message.role == "assistant":
            out.append(_Turn("assistant", assistant_text(message, syntax), reply=message))
        else:
            out.append(_Turn(message.role, message.content, user=message.role == "user"))
        k += 1
    return out


def _templated(
    prompt: Prompt, tokenizer: Tokenizer, system: list[str], turns: list[_Turn]
) -> tuple[list[Piece], list[tuple[int, Message]]]:
    """Pieces through the chat template, and the piece of each assistant message."""
    values: list[str] = []

    def stand(value: str) -> str:
        values.append(value)
        return value_mark(len(values) - 1)

    chat: list[tuple[str, str]] = []
    own = [prompt.system] if prompt.system else []
    if own or system:
        chat.append(("system", SYSTEM_JOIN.join(own + [stand(v) for v in system])))
    replies: list[tuple[int, Message]] = []  # (value index, message)
    for turn in turns:
        if turn.reply is not None:
            replies.append((len(values), turn.reply))
        text = render_user(prompt, stand(turn.text)) if turn.user else stand(turn.text)
        chat.append((turn.role, text))
    try:
        pieces, parts = render_turns(replace(prompt, system=""), tokenizer, chat, values, True)
        return pieces, [(value_place(parts, index), m) for index, m in replies]
    except SpecError as exc:
        raise BadRequest(
            f"the model's chat template refused these messages ({exc.message}): "
            "order them as the model expects (system messages first, then user and "
            "assistant turns in turn)",
            param="messages",
        ) from None


def _untemplated(
    prompt: Prompt, system: list[str], turns: list[_Turn]
) -> tuple[list[Piece], list[tuple[int, Message]]]:
    """Without a chat template: the system text and a blank line, then each user turn
    through the spec's user template and a newline, each reply and a blank line."""
    pieces: list[Piece] = []
    head = ([Piece(prompt.system.rstrip("\n"), True)] if prompt.system else []) + [
        Piece(v) for v in system
    ]
    for k, part in enumerate(head):
        pieces += [Piece(SYSTEM_JOIN, True), part] if k else [part]
    pieces += [Piece(SYSTEM_JOIN, True)] if head else []
    replies: list[tuple[int, Message]] = []
    for turn in turns:
        if turn.reply is not None:
            replies.append((len(pieces), turn.reply))
            pieces += [Piece(turn.text), Piece("\n\n", True)]
        elif turn.user:
            pieces += [*user_turn_pieces(prompt, turn.text), Piece("\n", True)]
        else:
            pieces += [Piece(turn.text), Piece("\n", True)]
    return pieces, replies


def _assemble(
    tokenizer: Tokenizer,
    pieces: list[Piece],
    replies: list[tuple[int, Message]],
    known: Known | None,
    eos_ids: frozenset[int],
) -> Rendered:
    """Encode the stretches between replies; each reply as its own ids where known."""
    ids: list[int] = []
    start, matched = 0, 0
    end_of_turn: str | None = None  # a known reply ended with it: the template's is left out
    for at, message in replies:
        ids += _encode_after(tokenizer, pieces[start:at], end_of_turn)
        end_of_turn = None
        found = known(ids, message) if known is not None else None
        if found is not None and found.healed <= len(ids):
            del ids[len(ids) - found.healed :]
            ids += found.ids
            matched += 1
            if found.ids and found.ids[-1] in eos_ids:
                end_of_turn = tokenizer.decode([found.ids[-1]])
        else:
            ids += encode(tokenizer, pieces[at : at + 1])
        start = at + 1
    ids += _encode_after(tokenizer, pieces[start:], end_of_turn)
    return Rendered(tuple(ids), matched)


def _encode_after(tokenizer: Tokenizer, pieces: list[Piece], end_of_turn: str | None) -> list[int]:
    """The ids of a stretch; after a reply that ended its turn, without the template's end."""
    stretch = tuple(p for p in pieces if p.text)
    if end_of_turn:
        rest = without_start(stretch, end_of_turn)
        stretch = stretch if rest is None else rest
    return encode(tokenizer, stretch)
