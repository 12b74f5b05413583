"""A Hugging Face tokenizer as we use it (transformers' tokenizer classes fit it)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from llmos_grammar.errors import ModelError


@runtime_checkable
class Tokenizer(Protocol):
    """transformers' PreTrainedTokenizerBase: the members the runtime, the token table,
    model loading and training use."""

    @property
    def eos_token_id(self) -> int | None: ...

    @property
    def all_special_ids(self) -> list[int]: ...

    @property
    def all_special_tokens(self) -> list[str]: ...

    @property
    def added_tokens_decoder(self) -> Mapping[int, object]: ...

    @property
    def vocab_size(self) -> int: ...

    def __len__(self) -> int: ...

    def __hash__(self) -> int: ...  # by identity: per-tokenizer caches key on it

    def encode(
        self, text: str, *, add_special_tokens: bool = True, split_special_tokens: bool = False
    ) -> list[int]: ...

    def decode(self, token_ids: list[int], skip_special_tokens: bool = False) -> str: ...

    def convert_tokens_to_ids(self, tokens: str) -> int | list[int]: ...

    def convert_ids_to_tokens(self, ids: int) -> str | list[str]: ...

    def apply_chat_template(
        self,
        conversation: list[dict[str, str]],
        *,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
    ) -> object: ...

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Sequence[str]: ...


def as_tokenizer(found: object, where: str) -> Tokenizer:
    """`found` (what transformers loaded for `where`) as a Tokenizer; ModelError when it
    lacks what decoding uses. transformers declares `decode` as giving `str | list[str]`;
    given one sequence, as we call it, it gives a `str`."""
    if not isinstance(found, Tokenizer):
        raise ModelError(f"{where}: {type(found).__name__} is not a text tokenizer")
    return found
