"""outlines-core indexes built within bounds (time, states) in a child process, cached on disk.

An index's size and build time grow with the regex (a bounded repetition of a Unicode class
can take minutes), so each build runs in a forked child that is killed past `Bounds.seconds`.
Built indexes are pickled under `cache_root()/outlines/`, keyed by the regex, the vocabulary
digest and the outlines-core version; a build that passed its bounds is remembered too, so the
next check or load answers at once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import multiprocessing
import os
import pickle
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.errors import BackendError, GrammarError
from llmos_grammar.paths import cache_root

if TYPE_CHECKING:
    from llmos_grammar.libtypes.outlines import Index, Vocabulary

_LOADED: dict[str, Index] = {}
_MAX_LOADED = 32


@dataclass(frozen=True)
class Bounds:
    """Limits on one index build: wall-clock seconds, and DFA states (None: not counted)."""

    seconds: float
    states: int | None = None

    def key(self) -> str:
        return f"{self.seconds:g}:{self.states}"


def cache_dir() -> Path:
    return cache_root() / "outlines"


def cache_key(regex: str, vocab_digest: str, bounds: Bounds) -> str:
    version = importlib.metadata.version("outlines_core")
    text = "\0".join((version, vocab_digest, bounds.key(), regex))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def bounded_index(regex: str, vocabulary: Vocabulary, vocab_digest: str, bounds: Bounds) -> Index:
    """The outlines-core Index of `regex`: from memory, from disk, or built in a child process.
    BackendError when the build passes `bounds`, GrammarError when the regex is invalid."""
    key = cache_key(regex, vocab_digest, bounds)
    if key in _LOADED:
        return _LOADED[key]
    folder = cache_dir()
    done, limit = folder / f"{key}.idx", folder / f"{key}.limit"
    if limit.is_file():
        raise BackendError(limit.read_text())
    if not done.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _build_bounded(regex, vocabulary, bounds, done, limit)
    index: Index = pickle.loads(done.read_bytes())
    if len(_LOADED) >= _MAX_LOADED:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = index
    return index


def _build_bounded(
    regex: str, vocabulary: Vocabulary, bounds: Bounds, done: Path, limit: Path
) -> None:
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    temp = done.with_suffix(f".{os.getpid()}.tmp")
    child = ctx.Process(target=_child, args=(regex, vocabulary, bounds, str(temp), writer))
    child.start()
    writer.close()
    child.join(bounds.seconds)
    if child.is_alive():
        child.kill()
        child.join()
        temp.unlink(missing_ok=True)
        _remember(limit, f"building the Outlines index took over {bounds.seconds:g} s")
    verdict, message = reader.recv() if reader.poll() else ("error", "the build process died")
    reader.close()
    if verdict == "limit":
        _remember(limit, message)
    if verdict == "error":
        raise GrammarError(f"outlines-core rejects the regex: {message}")
    os.replace(temp, done)


def _remember(limit: Path, message: str) -> None:
    limit.write_text(message)
    raise BackendError(message)


def _child(regex: str, vocabulary: Vocabulary, bounds: Bounds, temp: str, out: Connection) -> None:
    """Build, count states, pickle to `temp`; report (verdict, message) on `out`."""
    import outlines_core

    started = time.perf_counter()
    try:
        index = outlines_core.Index(regex, vocabulary)
    except (ValueError, RuntimeError) as exc:
        out.send(("error", str(exc).split("\n")[0]))
        return
    if bounds.states is not None:
        states = len(index.get_transitions())
        if states > bounds.states:
            out.send(("limit", f"the Outlines index has {states} states (bound {bounds.states})"))
            return
    Path(temp).write_bytes(pickle.dumps(index))
    out.send(("ok", f"{time.perf_counter() - started:.3f}"))
