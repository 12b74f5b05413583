"""The constraint-backend interface: compile a grammar for a tokenizer, then step a matcher."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from torch import Tensor

    from llmos_grammar.constraints.tokens import TokenTable
    from llmos_grammar.ir import GrammarSource

BackendName = Literal["llguidance", "outlines"]


class MatcherError(Exception):
    """The matcher entered its error state; the decode loop turns this into a DecodeError."""


class Matcher(Protocol):
    """One visit of a constrained state: consume, forced tokens, acceptance. Its allowed
    tokens come from its backend's `fill_masks`, many matchers at once."""

    name: str
    backend: BackendName

    def consume(self, tokens: list[int]) -> bool:
        """Advance over `tokens`; False (with `error` set) when the grammar rejects one."""

    def forced(self) -> list[int]:
        """Tokens the grammar forces next (possibly none); the matcher does not move."""

    def is_accepting(self) -> bool:
        """Whether the text so far is a complete string of the grammar."""

    @property
    def error(self) -> str:
        """Why the matcher stopped accepting tokens; empty while it accepts them."""


class Compiled(Protocol):
    """A grammar bound to a tokenizer; `new()` gives a fresh matcher per state visit."""

    name: str
    backend: BackendName

    def new(self) -> Matcher: ...


class Backend(Protocol):
    """Compiles constraints and fills masks for many matchers of its own kind at once."""

    name: BackendName

    def compile(
        self, source: GrammarSource, table: TokenTable, close: str | None, name: str
    ) -> Compiled:
        """The compiled constraint: `source` then the literal `close` (when given).
        Raises BackendError when the backend cannot express `source` or passes its bounds,
        GrammarError when the grammar does not compile."""

    def fill_masks(
        self, rows: Sequence[tuple[Matcher, int]], bitmask: Tensor
    ) -> dict[int, MatcherError]:
        """Fill `bitmask[row]` for each (matcher, row) pair; all matchers are this backend's.

        `bitmask` is a contiguous int32 CPU tensor (rows, words): bit i of word w allows
        token 32 * w + i. Returns the rows whose matcher is in its error state, with the
        error (their mask rows say nothing); a batch goes on with the other rows.
        """
