"""The on-disk store of prompt-prefix states: round trip, misses, pruning, opting out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmos_grammar.engines import prefix_store
from llmos_grammar.engines.prefix_store import PrefixStore


@pytest.fixture
def gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(prefix_store, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.delenv("LLMOS_KV_CACHE", raising=False)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"weights")
    return str(model)


def store(gguf: str, *parts: object) -> PrefixStore:
    made = PrefixStore.for_model(gguf, *parts)
    assert made is not None
    return made


def test_a_saved_state_loads_for_the_same_ids_only(gguf: str) -> None:
    s = store(gguf, "0.3.36", 2)
    s.save([1, 2, 3], b"state")
    assert s.load([1, 2, 3]) == b"state"
    assert s.load([1, 2]) is None
    assert s.load([1, 2, 3, 4]) is None


def test_another_build_threads_or_model_file_misses(gguf: str) -> None:
    store(gguf, "0.3.36", 2).save([1, 2, 3], b"state")
    assert store(gguf, "0.3.37", 2).load([1, 2, 3]) is None
    assert store(gguf, "0.3.36", 4).load([1, 2, 3]) is None
    Path(gguf).write_bytes(b"other weights")
    assert store(gguf, "0.3.36", 2).load([1, 2, 3]) is None


def test_a_damaged_or_foreign_file_is_a_miss(gguf: str) -> None:
    s = store(gguf, "v")
    s.save([5, 6], b"state")
    path = s.path([5, 6])
    path.write_bytes(b"not a state")
    assert s.load([5, 6]) is None
    path.write_bytes(prefix_store.MAGIC + b'{"model": "x", "ids": [5, 6]}\nstate')
    assert s.load([5, 6]) is None
    s.save([5, 6], b"state")
    s.drop([5, 6])
    assert not path.exists()
    assert s.load([5, 6]) is None


def test_the_least_recently_used_files_go_past_the_limit(
    gguf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prefix_store, "MAX_FILES", 3)
    s = store(gguf, "v")
    for i in range(3):
        s.save([i], b"x")
        os.utime(s.path([i]), ns=(i * 10**9, i * 10**9))
    assert s.load([0]) == b"x"  # read now: the most recent
    s.save([9], b"x")
    kept = {i for i in (0, 1, 2, 9) if s.path([i]).exists()}
    assert kept == {0, 2, 9}


def test_a_cache_that_cannot_be_written_keeps_nothing_and_says_nothing(gguf: str) -> None:
    s = store(gguf, "v")
    s.folder.parent.mkdir(parents=True)
    s.folder.write_text("a file where the folder should be")
    s.save([1], b"state")  # no exception
    assert s.load([1]) is None


def test_llmos_kv_cache_0_turns_the_store_off(gguf: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_KV_CACHE", "0")
    assert PrefixStore.for_model(gguf, "v") is None
