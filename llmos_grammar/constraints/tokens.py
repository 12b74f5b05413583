"""A tokenizer's byte view: the llguidance tokenizer and the bytes of every token."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmos_grammar.errors import ModelError

if TYPE_CHECKING:
    from llguidance import LLTokenizer

    from llmos_grammar.libtypes.hf import Tokenizer


@dataclass
class TokenTable:
    """Token id -> bytes, plus the llguidance tokenizer built from the same vocabulary."""

    llg: LLTokenizer
    token_bytes: list[bytes]
    special: frozenset[int]
    vocab_size: int  # logits width; ids at or beyond len(token_bytes) are padding
    # per-table products of backends (e.g. the outlines Vocabulary), built on first use
    derived: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    def decode(self, tokens: list[int]) -> bytes:
        """The bytes of `tokens` (special tokens render as their text)."""
        table = self.token_bytes
        return b"".join(table[t] if t < len(table) else b"" for t in tokens)

    @property
    def eos(self) -> int:
        return int(self.llg.eos_token)

    def digest(self) -> str:
        """A hash of every (id, bytes) pair, the special ids and the EOS (names a vocabulary)."""
        if "digest" not in self.derived:
            h = hashlib.sha256(f"{self.eos}:{self.vocab_size}:{sorted(self.special)}".encode())
            for data in self.token_bytes:
                h.update(len(data).to_bytes(4, "little"))
                h.update(data)
            self.derived["digest"] = h.hexdigest()[:24]
        return str(self.derived["digest"])


def build_table(
    tokenizer: Tokenizer, vocab_size: int, eos: int | list[int] | None = None
) -> TokenTable:
    """Build the table once per tokenizer (~0.5 s for a 49k vocabulary)."""
    import llguidance.hf
    from transformers import PreTrainedTokenizerFast

    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise ModelError(
            f"constrained decoding needs a fast (tokenizer.json) Hugging Face tokenizer; "
            f"this model's is a {type(tokenizer).__name__}"
        )
    n_tok = len(tokenizer)
    llg_tok = llguidance.hf.from_tokenizer(tokenizer, n_vocab=max(vocab_size, n_tok), eos_token=eos)
    special = frozenset(int(i) for i in getattr(tokenizer, "all_special_ids", []))
    token_bytes: list[bytes] = []
    for i in range(n_tok):
        if i in special:
            token_bytes.append(str(tokenizer.convert_ids_to_tokens(i)).encode())
        else:
            token_bytes.append(llg_tok.decode_bytes([i]))
    return TokenTable(llg_tok, token_bytes, special, max(vocab_size, n_tok))


@functools.cache
def byte_table() -> TokenTable:
    """A model-free table: token i < 256 is byte i (llguidance's byte tokenizer, EOS above;
    the one the grammar stage's matchers use)."""
    from llmos_grammar.grammar.backend import byte_tokenizer

    tokenizer = byte_tokenizer()
    token_bytes = [bytes([i]) for i in range(256)]
    return TokenTable(tokenizer, token_bytes, frozenset(), tokenizer.vocab_size)
