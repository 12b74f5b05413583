"""The prompt: system text and task through the chat template, then the forced assistant prefix."""

from __future__ import annotations

from typing import Any

from llmos_grammar.errors import SpecError
from llmos_grammar.ir import Prompt


def render_user(prompt: Prompt, task: str) -> str:
    """The user turn: the spec's template with {task} replaced (other braces kept)."""
    return prompt.user.replace("{task}", task)


def prompt_text(prompt: Prompt, tokenizer: Any, task: str) -> str:
    """The full prompt text up to (not including) the assistant prefix."""
    user = render_user(prompt, task)
    if prompt.chat_template and getattr(tokenizer, "chat_template", None):
        messages = []
        if prompt.system:
            messages.append({"role": "system", "content": prompt.system})
        messages.append({"role": "user", "content": user})
        try:
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:  # jinja errors from a model's own template
            raise SpecError(f"the model's chat template failed: {exc}") from exc
        return str(text)
    parts = [prompt.system.rstrip("\n"), user] if prompt.system else [user]
    return "\n\n".join(parts) + "\n"


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` with no BOS/EOS added (special-token text maps to its id)."""
    return list(tokenizer.encode(text, add_special_tokens=False))
