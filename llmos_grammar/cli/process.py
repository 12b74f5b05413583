"""Process-wide settings that only a command may choose: torch threads, quiet model loading."""

from __future__ import annotations


def prepare_for_model() -> None:
    """Before a command loads a model: every allowed core for torch, no progress bars."""
    from llmos_grammar.models import quiet_loading, set_threads

    set_threads()
    quiet_loading()
