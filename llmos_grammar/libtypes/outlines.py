"""outlines-core's Vocabulary, Index and Guide (a compiled extension without type stubs).

Only what the Outlines backend and the differential check call. States and
token ids are ints; an Index is built by `outlines_core.Index(regex, vocabulary)`
and walked by `outlines_core.Guide(index, max_rollback=N)`.
"""

from __future__ import annotations

from typing import Protocol


class Vocabulary(Protocol):
    """Token bytes -> ids, with the end-of-sequence id (we only hand it to Index)."""

    def get_eos_token_id(self) -> int | None: ...


class Index(Protocol):
    """The token-level automaton of a regex over a Vocabulary."""

    def get_initial_state(self) -> int: ...

    def get_final_states(self) -> set[int]: ...

    def is_final_state(self, state: int) -> bool: ...

    def get_allowed_tokens(self, state: int) -> list[int] | None: ...

    def get_next_state(self, state: int, token_id: int) -> int | None: ...

    def get_transitions(self) -> dict[int, dict[int, int]]: ...


class Guide(Protocol):
    """A walk over an Index: one per visit of a constrained state."""

    def get_state(self) -> int: ...

    def advance(self, token_id: int, return_tokens: bool = True) -> list[int] | None: ...

    def is_finished(self) -> bool: ...

    def get_tokens(self) -> list[int]: ...

    def rollback_state(self, n: int) -> None: ...

    def write_mask_into(self, data_ptr: int, numel: int, element_size: int) -> None: ...
