"""The llama.cpp state of a prompt prefix on disk, so a new process skips its prefill.

One file per (model, token ids) under `cache_root()/kv`: a header that names the
ids, then llama.cpp's bytes for one sequence (`llama_state_seq_get_data`).
Files are written atomically and the oldest are removed past MAX_FILES or
MAX_BYTES. A file that cannot be read, or whose header names other ids, is a
miss: the prefix is computed again. LLMOS_KV_CACHE=0 turns the store off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from llmos_grammar.paths import cache_root

MAGIC = b"llmos-kv 1\n"
MAX_FILES = 32
MAX_BYTES = 512 * 1024 * 1024


class PrefixStore:
    """Prefix states of one model and llama.cpp build (see the module docstring)."""

    def __init__(self, folder: Path, model_key: str) -> None:
        self.folder = folder
        self.model_key = model_key

    @classmethod
    def for_model(cls, gguf: str, *parts: object) -> PrefixStore | None:
        """The store for a GGUF file (its path, size and time) and what else shapes its state;
        None when LLMOS_KV_CACHE=0."""
        if os.environ.get("LLMOS_KV_CACHE", "1") == "0":
            return None
        try:
            info = os.stat(gguf)
        except OSError:
            return None
        key = json.dumps([os.path.abspath(gguf), info.st_size, info.st_mtime_ns, *map(str, parts)])
        return cls(cache_root() / "kv", hashlib.sha256(key.encode()).hexdigest())

    def path(self, ids: Sequence[int]) -> Path:
        digest = hashlib.sha256(f"{self.model_key}:{','.join(map(str, ids))}".encode())
        return self.folder / f"{digest.hexdigest()[:40]}.kv"

    def load(self, ids: Sequence[int]) -> bytes | None:
        """The stored state of exactly `ids`, or None."""
        path = self.path(ids)
        try:
            with open(path, "rb") as file:
                if file.readline() != MAGIC:
                    return None
                header = json.loads(file.readline())
                if header.get("model") != self.model_key or header.get("ids") != list(ids):
                    return None
                data = file.read()
            os.utime(path)  # recently used: kept longest
        except (OSError, ValueError):
            return None
        return data or None

    def save(self, ids: Sequence[int], data: bytes) -> None:
        """Keep `data` for `ids`; a full disk or a read-only cache keeps nothing."""
        path = self.path(ids)
        partial = path.with_name(f"{path.name}.tmp{os.getpid()}")
        header = json.dumps({"model": self.model_key, "ids": list(ids)}).encode()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as file:
                file.write(MAGIC + header + b"\n")
                file.write(data)
            os.replace(partial, path)
            self.prune()
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)

    def drop(self, ids: Sequence[int]) -> None:
        """Forget the state of `ids` (llama.cpp refused it)."""
        with contextlib.suppress(OSError):
            self.path(ids).unlink(missing_ok=True)

    def prune(self) -> None:
        """Remove the least recently used files past MAX_FILES or MAX_BYTES."""
        entries = []
        for path in self.folder.glob("*.kv"):
            try:
                info = path.stat()
            except OSError:
                continue
            entries.append((info.st_mtime_ns, info.st_size, path))
        entries.sort(reverse=True)
        total = 0
        for count, (_, size, path) in enumerate(entries):
            total += size
            if count >= MAX_FILES or total > MAX_BYTES:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)


__all__ = ["MAX_BYTES", "MAX_FILES", "PrefixStore"]
