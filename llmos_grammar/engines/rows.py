"""Helpers for engine implementations: shared prompt prefixes and re-fed last ids."""

from __future__ import annotations

from collections.abc import Sequence

from llmos_grammar.engines.base import Engine


def shared_prefix(ids: Sequence[int], prefix: Sequence[int]) -> int:
    """How many leading ids a row shares with a cached prefix, leaving its last id to feed
    (the row needs logits after it)."""
    shared, limit = 0, min(len(ids) - 1, len(prefix))
    while shared < limit and ids[shared] == prefix[shared]:
        shared += 1
    return shared


def first_shares(fresh: Sequence[Sequence[int]], minimum: int) -> bool:
    """Whether rows starting together should wait for the first one's prompt: another of
    them shares at least `minimum` leading ids with it (a system prompt, say)."""
    return any(shared_prefix(ids, fresh[0]) >= minimum for ids in fresh[1:])


def refeed_last(engine: Engine, row: int) -> None:
    """A row truncated back into its cache has no logits: queue its last id again."""
    ids = engine.ids(row)
    if not ids:
        raise RuntimeError("no logits: the sequence is empty")
    last = ids[-1]
    engine.truncate(row, len(ids) - 1)
    engine.append(row, [last])
