"""The prompt: system text and task through the chat template, then the forced assistant prefix.

A session continues one sequence: `next_turn_pieces` closes the assistant's reply
and opens the next user turn in the template's own format, and `history_pieces`
renders a whole conversation for a fresh cache. Each renders to pieces: the
template's text is trusted (it may make special tokens), the task, the user's
turns and the replies are not (see pieces.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmos_grammar.errors import SpecError
from llmos_grammar.ir import Prompt
from llmos_grammar.runtime.pieces import Piece, Pieces, encode_pieces, joined

if TYPE_CHECKING:
    from llmos_grammar.libtypes.hf import Tokenizer

# Stand for untrusted values inside a rendered template; never produced by a model.
_MARK = re.compile("\x00llmos-([0-9]+)\x00")


def _mark(index: int) -> str:
    return f"\x00llmos-{index}\x00"


def render_user(prompt: Prompt, task: str) -> str:
    """The user turn: the spec's template with {task} replaced (other braces kept)."""
    return prompt.user.replace("{task}", task)


def _templated(prompt: Prompt, tokenizer: Tokenizer) -> bool:
    return bool(prompt.chat_template and getattr(tokenizer, "chat_template", None))


def _render(
    prompt: Prompt, tokenizer: Tokenizer, turns: Sequence[tuple[str, str]], gen: bool
) -> str:
    """The chat template over the system text and (role, content) turns."""
    messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
    messages += [{"role": role, "content": content} for role, content in turns]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    except Exception as exc:  # jinja errors from a model's own template
        raise SpecError(f"the model's chat template failed: {exc}") from exc
    return str(text)


def _fill(parts: Sequence[str], values: Sequence[str]) -> list[Piece]:
    """Split-on-mark parts (text, index, text, ...) with each index replaced by its value."""
    return [Piece(p, True) if k % 2 == 0 else Piece(values[int(p)]) for k, p in enumerate(parts)]


def _render_pieces(
    prompt: Prompt,
    tokenizer: Tokenizer,
    turns: Sequence[tuple[str, str]],
    gen: bool,
    values: list[str],
) -> tuple[list[Piece], tuple[str, ...]]:
    """The chat template over turns whose contents hold marks for `values`, as pieces:
    the template's own text trusted, each value not, in the order they appear; and
    beside them the split rendering (text, value index, text, ...), one part a piece.

    A template that changes a message's content (trims it, say) shows as a rendering
    with the values that differs; the values trimmed are tried, then kept as given.
    """
    real_turns = [(r, _MARK.sub(lambda m: values[int(m[1])], c)) for r, c in turns]
    real = _render(prompt, tokenizer, real_turns, gen)
    kept = _marked(prompt, tokenizer, tuple(turns), gen)
    for fresh in (False, True):  # afresh: a template whose own text changes (prints the date)
        parts = _marked.__wrapped__(prompt, tokenizer, tuple(turns), gen) if fresh else kept
        for candidate in (values, [v.strip() for v in values]):
            pieces = _fill(parts, candidate)
            if joined(pieces) == real:
                return pieces, parts
    return _fill(kept, values), kept


@functools.lru_cache(maxsize=64)
def _marked(
    prompt: Prompt, tokenizer: Tokenizer, turns: tuple[tuple[str, str], ...], gen: bool
) -> tuple[str, ...]:
    """The rendering of marked turns split on the marks (the same for every task: kept)."""
    return tuple(_MARK.split(_render(prompt, tokenizer, turns, gen)))


def _place(parts: Sequence[str], index: int) -> int:
    """Where value `index` first stands in split parts; a template that drops it is an error."""
    for k in range(1, len(parts), 2):
        if parts[k] == str(index):
            return k
    raise SpecError(
        "the model's chat template leaves out the assistant's reply: set chat_template: false"
    )


def _user_pieces(prompt: Prompt, task: str) -> list[Piece]:
    """The user template (trusted) with the task (untrusted) in place of each {task}."""
    parts = prompt.user.split("{task}")
    out = [Piece(parts[0], True)]
    for part in parts[1:]:
        out += [Piece(task), Piece(part, True)]
    return out


def _tidy(pieces: Sequence[Piece]) -> Pieces:
    return tuple(p for p in pieces if p.text)


def prompt_pieces(prompt: Prompt, tokenizer: Tokenizer, task: str) -> Pieces:
    """The full prompt up to (not including) the assistant prefix, as pieces."""
    if _templated(prompt, tokenizer):
        user = render_user(prompt, _mark(0))
        return _tidy(_render_pieces(prompt, tokenizer, [("user", user)], True, [task])[0])
    head = prompt.system.rstrip("\n") + "\n\n" if prompt.system else ""
    return _tidy([Piece(head, True), *_user_pieces(prompt, task), Piece("\n", True)])


def prompt_text(prompt: Prompt, tokenizer: Tokenizer, task: str) -> str:
    """The full prompt text up to (not including) the assistant prefix."""
    return joined(prompt_pieces(prompt, tokenizer, task))


def task_free_ids(prompt: Prompt, tokenizer: Tokenizer) -> list[int]:
    """The prompt's leading token ids that no task changes: where renderings for two unlike
    tasks part, less one id (a task's first characters may merge with the id before)."""
    first = encode(tokenizer, prompt_pieces(prompt, tokenizer, "A"))
    second = encode(tokenizer, prompt_pieces(prompt, tokenizer, "\n7 "))
    common = 0
    while common < min(len(first), len(second)) and first[common] == second[common]:
        common += 1
    return first[: max(0, common - 1)]


def next_turn_pieces(prompt: Prompt, tokenizer: Tokenizer, task: str) -> Pieces:
    """The text after an assistant reply up to the next reply: end of turn, user turn, prefix.

    It is cut from the template's rendering of a conversation, after the reply,
    so it holds the template's own end-of-turn text (drop it when the reply
    already ended with that token).
    """
    if not _templated(prompt, tokenizer):
        return _tidy([Piece("\n\n", True), *_user_pieces(prompt, task), Piece("\n", True)])
    turns = [("user", "?"), ("assistant", _mark(0)), ("user", render_user(prompt, _mark(1)))]
    pieces, parts = _render_pieces(prompt, tokenizer, turns, True, ["", task])
    return _tidy(pieces[_place(parts, 0) + 1 :])


def next_turn_text(prompt: Prompt, tokenizer: Tokenizer, task: str) -> str:
    """`next_turn_pieces` as one text."""
    return joined(next_turn_pieces(prompt, tokenizer, task))


def history_pieces(
    prompt: Prompt, tokenizer: Tokenizer, exchanges: Sequence[tuple[str, str]]
) -> Pieces:
    """A conversation of (task, reply) exchanges, up to the end of the last reply's text."""
    if not exchanges:
        raise ValueError("a history needs at least one exchange")
    if not _templated(prompt, tokenizer):
        (task, reply), rest = exchanges[0], exchanges[1:]
        head = prompt_pieces(prompt, tokenizer, task) + (Piece(reply),)
        tail = [next_turn_pieces(prompt, tokenizer, t) + (Piece(r),) for t, r in rest]
        return _tidy([p for part in (head, *tail) for p in part])
    turns: list[tuple[str, str]] = []
    values: list[str] = []
    for task, reply in exchanges:
        turns.append(("user", render_user(prompt, _mark(len(values)))))
        turns.append(("assistant", _mark(len(values) + 1)))
        values += [task, reply]
    pieces, parts = _render_pieces(prompt, tokenizer, turns, False, values)
    # up to the last reply, then the reply as it stands (the template may end a turn after it)
    return _tidy([*pieces[: _place(parts, len(values) - 1)], Piece(exchanges[-1][1])])


def history_text(prompt: Prompt, tokenizer: Tokenizer, exchanges: Sequence[tuple[str, str]]) -> str:
    """`history_pieces` as one text."""
    return joined(history_pieces(prompt, tokenizer, exchanges))


def encode(tokenizer: Tokenizer, text: str | Sequence[Piece]) -> list[int]:
    """Token ids with no BOS/EOS added; only trusted pieces make special tokens (a plain str
    is untrusted: special-token text in it stays text)."""
    return encode_pieces(tokenizer, text)


# ---- for renderers of whole conversations (serve/render.py) --------------------------------


def value_mark(index: int) -> str:
    """The stand-in for value `index` inside turns given to `render_turns`."""
    return _mark(index)


def render_turns(
    prompt: Prompt,
    tokenizer: Tokenizer,
    turns: Sequence[tuple[str, str]],
    values: Sequence[str],
    gen: bool,
) -> tuple[list[Piece], tuple[str, ...]]:
    """The chat template over the prompt's system text and (role, content) turns whose
    contents hold `value_mark`s: pieces (template text trusted, each value not) and beside
    them the split parts (text, value index, text, ...), one part a piece."""
    return _render_pieces(prompt, tokenizer, turns, gen, list(values))


def value_place(parts: Sequence[str], index: int) -> int:
    """Where value `index` stands in `render_turns`' parts (SpecError when left out)."""
    return _place(parts, index)


def uses_template(prompt: Prompt, tokenizer: Tokenizer) -> bool:
    """Whether the prompt goes through the model's chat template."""
    return _templated(prompt, tokenizer)


def user_turn_pieces(prompt: Prompt, text: str) -> Pieces:
    """The user template (trusted) around `text` (untrusted), without a chat template."""
    return _tidy(_user_pieces(prompt, text))
