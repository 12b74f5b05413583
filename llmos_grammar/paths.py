"""Where the shipped grammars, policies and examples live, and the local cache."""

from __future__ import annotations

import os
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


def cache_root() -> Path:
    """Where converted models and built indexes are kept: $LLMOS_CACHE or
    $XDG_CACHE_HOME/llmos-grammar."""
    explicit = os.environ.get("LLMOS_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "llmos-grammar"
