"""A tqdm progress bar, as the evaluation and training loops drive it."""

from __future__ import annotations

from typing import Protocol


class ProgressBar(Protocol):
    """tqdm.tqdm: a count `n` moved by `update`, a text after the bar, and `close`."""

    n: float

    def update(self, n: float = 1) -> bool | None: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...

    def close(self) -> None: ...


def progress_bar(total: int, label: str, unit: str, enabled: bool) -> ProgressBar:
    """A tqdm bar on stderr (drawn only when `enabled`)."""
    import sys

    from tqdm import tqdm

    bar: ProgressBar = tqdm(
        total=total, desc=label, unit=unit, file=sys.stderr, disable=not enabled
    )
    return bar
