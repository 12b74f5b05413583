"""Where the shipped grammars, policies and examples live."""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
INSTALLED = Path(sys.prefix) / "share" / "llmos-grammar"


def shipped(folder: str) -> Path:
    """The shipped folder `folder` ("grammars", "policies"): the checkout's, else the installed."""
    local = CHECKOUT / folder
    return local if local.is_dir() else INSTALLED / folder


def default_policy() -> Path:
    return shipped("policies") / "default.yaml"
