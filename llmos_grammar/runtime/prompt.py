"""The prompt: system text and task through the chat template, then the forced assistant prefix.

A session continues one sequence: `next_turn_text` closes the assistant's reply
and opens the next user turn in the template's own format, and `history_text`
renders a whole conversation for a fresh cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmos_grammar.errors import SpecError
from llmos_grammar.ir import Prompt

# Stands for an assistant reply inside a rendered template; never produced by a model.
_REPLY = "\x00llmos-reply\x00"


def render_user(prompt: Prompt, task: str) -> str:
    """The user turn: the spec's template with {task} replaced (other braces kept)."""
    return prompt.user.replace("{task}", task)


def _templated(prompt: Prompt, tokenizer: Any) -> bool:
    return bool(prompt.chat_template and getattr(tokenizer, "chat_template", None))


def _render(prompt: Prompt, tokenizer: Any, turns: Sequence[tuple[str, str]], gen: bool) -> str:
    """The chat template over the system text and (role, content) turns."""
    messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
    messages += [{"role": role, "content": content} for role, content in turns]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    except Exception as exc:  # jinja errors from a model's own template
        raise SpecError(f"the model's chat template failed: {exc}") from exc
    return str(text)


def prompt_text(prompt: Prompt, tokenizer: Any, task: str) -> str:
    """The full prompt text up to (not including) the assistant prefix."""
    user = render_user(prompt, task)
    if _templated(prompt, tokenizer):
        return _render(prompt, tokenizer, [("user", user)], gen=True)
    parts = [prompt.system.rstrip("\n"), user] if prompt.system else [user]
    return "\n\n".join(parts) + "\n"


def task_free_ids(prompt: Prompt, tokenizer: Any) -> list[int]:
    """The prompt's leading token ids that no task changes: where renderings for two unlike
    tasks part, less one id (a task's first characters may merge with the id before)."""
    first = encode(tokenizer, prompt_text(prompt, tokenizer, "A"))
    second = encode(tokenizer, prompt_text(prompt, tokenizer, "\n7 "))
    common = 0
    while common < min(len(first), len(second)) and first[common] == second[common]:
        common += 1
    return first[: max(0, common - 1)]


def next_turn_text(prompt: Prompt, tokenizer: Any, task: str) -> str:
    """The text after an assistant reply up to the next reply: end of turn, user turn, prefix.

    It is cut from the template's rendering of a conversation, after the reply,
    so it holds the template's own end-of-turn text (drop it when the reply
    already ended with that token).
    """
    user = render_user(prompt, task)
    if not _templated(prompt, tokenizer):
        return "\n\n" + user + "\n"
    turns = [("user", "?"), ("assistant", _REPLY), ("user", user)]
    text = _render(prompt, tokenizer, turns, gen=True)
    return text[text.index(_REPLY) + len(_REPLY) :]


def history_text(prompt: Prompt, tokenizer: Any, exchanges: Sequence[tuple[str, str]]) -> str:
    """A conversation of (task, reply) exchanges, up to the end of the last reply's text."""
    if not exchanges:
        raise ValueError("a history needs at least one exchange")
    if not _templated(prompt, tokenizer):
        head = prompt_text(prompt, tokenizer, exchanges[0][0]) + exchanges[0][1]
        return head + "".join(next_turn_text(prompt, tokenizer, t) + r for t, r in exchanges[1:])
    turns: list[tuple[str, str]] = []
    for task, reply in exchanges:
        turns += [("user", render_user(prompt, task)), ("assistant", reply)]
    turns[-1] = ("assistant", _REPLY)
    text = _render(prompt, tokenizer, turns, gen=False)
    return text[: text.index(_REPLY)] + exchanges[-1][1]


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` with no BOS/EOS added (special-token text maps to its id)."""
    return list(tokenizer.encode(text, add_special_tokens=False))
