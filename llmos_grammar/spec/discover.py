"""Find specs and policies below folders: YAML files whose head says `llmos:` or `llmos-policy:`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "venv", "build", "dist"})


def expand(paths: Iterable[str]) -> list[str]:
    """Files as given; folders searched for specs and policies (hidden folders skipped)."""
    out: list[str] = []
    for raw in paths:
        if not Path(raw).is_dir():
            out.append(raw)
            continue
        for folder, dirs, files in os.walk(raw):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
            for name in sorted(files):
                path = Path(folder) / name
                if path.suffix in (".yaml", ".yml") and looks_like_ours(path):
                    out.append(str(path))
    return out


def looks_like_ours(path: Path) -> bool:
    try:
        with path.open("rb") as handle:  # the head says it; a large file is not read whole
            head = handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return any(line.startswith(("llmos:", "llmos-policy:")) for line in head.splitlines())
