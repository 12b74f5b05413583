"""One token sequence (a row of an engine) and token healing at the boundary of queued text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmos_grammar.constraints import TokenTable
from llmos_grammar.engines import Engine, gives_logits, start_engine
from llmos_grammar.libtypes.hf import Tokenizer
from llmos_grammar.models import LoadedModel
from llmos_grammar.runtime.pieces import Piece, encode_pieces, joined

if TYPE_CHECKING:
    from torch import Tensor


class KVSequence:
    """One row of an engine: its ids, the part already cached, the next-token logits.

    With no engine given, the sequence has an engine of its own (the model's).
    Alongside the ids it keeps `chosen`: 1 for each id the model sampled and
    kept, 0 for everything fed without sampling; and `floor`, the shortest the
    sequence has been since `mark_floor` (the prompt, minus any healed token).
    """

    def __init__(self, lm: LoadedModel, engine: Engine | None = None) -> None:
        if engine is None:
            engine = start_engine(lm)
        self.lm = lm
        self.engine: Engine = engine
        self.row = engine.open_row()
        self.chosen: list[int] = []
        self.floor = 0

    @property
    def ids(self) -> list[int]:
        return self.engine.ids(self.row)

    @property
    def cached(self) -> int:
        return self.engine.cached(self.row)

    @property
    def forward_passes(self) -> int:
        return self.engine.row_counters(self.row).forward_passes

    @property
    def forward_tokens(self) -> int:
        return self.engine.row_counters(self.row).tokens_fed

    def append(self, tokens: list[int], chosen: bool = False) -> None:
        """Queue tokens; they enter the cache at the next `flush` (or batched forward)."""
        self.engine.append(self.row, tokens)
        self.chosen.extend([int(chosen)] * len(tokens))

    def truncate(self, length: int) -> None:
        """Drop ids[length:], cached or not."""
        self.engine.truncate(self.row, length)
        del self.chosen[length:]
        self.floor = min(self.floor, length)

    def mark_floor(self) -> None:
        """Remember the current length (the end of the prompt)."""
        self.floor = len(self.ids)

    def flush(self) -> Tensor:
        """Feed every queued token in one forward pass of this row alone; return the logits."""
        return gives_logits(self.engine).forward([self.row])[self.row]

    def close(self) -> None:
        """Give the row back to the engine."""
        self.engine.close_row(self.row)


def heal_append(
    seq: KVSequence, table: TokenTable, tokenizer: Tokenizer, text: str | Sequence[Piece]
) -> int:
    """Queue `text` after the sequence so that the model sees a natural tokenization.

    The last token is re-tokenized together with `text` (token healing, as llguidance
    and guidance do at prompt boundaries): "]" followed by "\\n[OUTPUT]" may become
    "]\\n" + "[OUTPUT]". A last token that is special or ends inside a UTF-8
    character is kept as it is. Only trusted pieces of `text` make special tokens (a
    plain str is untrusted; see pieces.py). Returns how many tokens were queued.
    """
    pieces = (Piece(text),) if isinstance(text, str) else tuple(text)
    if not joined(pieces):
        return 0
    ids = seq.ids
    last = ids[-1] if ids else None
    if last is not None and last not in table.special and last < len(table.token_bytes):
        try:
            head: str | None = table.token_bytes[last].decode("utf-8")
        except UnicodeDecodeError:
            head = None
        if head is not None:
            new = encode_pieces(tokenizer, (Piece(head), *pieces))
            if new and new[0] == last:
                seq.append(new[1:])
                return len(new) - 1
            seq.truncate(len(ids) - 1)
            seq.append(new)
            return len(new)
    new = encode_pieces(tokenizer, pieces)
    seq.append(new)
    return len(new)
