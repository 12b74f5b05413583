"""Where the shipped grammars, policies and examples live."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shipped(folder: str) -> Path:
    """The shipped folder `folder` ("grammars", "policies", "examples")."""
    return ROOT / folder


def default_policy() -> Path:
    return shipped("policies") / "default.yaml"
