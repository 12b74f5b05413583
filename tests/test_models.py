"""Model location and loading choices (no weights are loaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos_grammar.errors import ModelError
from llmos_grammar.ir import ModelRef
from llmos_grammar.models import cache_root, default_gguf_path, pick_dtype, resolve, wrap
from tests.test_runtime_helpers import tiny_model


def test_default_model_is_the_packaged_gguf() -> None:
    path = default_gguf_path()
    assert path.suffix == ".gguf" and path.is_file()
    folder, gguf = resolve("smollm2-135m-instruct")
    assert Path(folder, gguf) == path


def test_gguf_path_and_hub_id() -> None:
    path = default_gguf_path()
    assert resolve(ModelRef(name=str(path))) == (str(path.parent), path.name)
    assert resolve("HuggingFaceTB/SmolLM2-360M-Instruct") == (
        "HuggingFaceTB/SmolLM2-360M-Instruct",
        None,
    )
    with pytest.raises(ModelError):
        resolve("/nowhere/model.gguf")


def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLMOS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "llmos-grammar"
    monkeypatch.setenv("LLMOS_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"


def test_dtype_choice() -> None:
    import torch

    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert pick_dtype("float16", torch.device("cpu")) == torch.float16
    with pytest.raises(ModelError):
        pick_dtype("float7", torch.device("cpu"))


def test_wrap_reports_vocab_and_eos() -> None:
    lm = tiny_model()
    again = wrap(lm.model, lm.tokenizer)
    assert again.vocab_size == lm.model.config.vocab_size
    assert lm.tokenizer.eos_token_id in again.eos_ids


def test_loading_a_local_model_changes_nothing_process_wide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import torch

    from llmos_grammar.models import load_model

    lm = tiny_model()
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = load_model(str(tmp_path))
        assert loaded.vocab_size == lm.vocab_size
        assert torch.get_num_threads() == 1  # only the CLI chooses the thread count
        # a hub id can still be loaded afterwards: nothing switched the process offline
        assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ
        assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
    finally:
        torch.set_num_threads(threads)


@pytest.mark.model
def test_a_gguf_tokenizer_is_read_once_then_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from llmos_grammar.models import load_tokenizer

    monkeypatch.setenv("LLMOS_CACHE", str(tmp_path))
    first = load_tokenizer()
    cached = list((tmp_path / "models").glob("*-tokenizer"))
    assert len(cached) == 1 and (cached[0] / "tokenizer.json").is_file()
    assert not list((tmp_path / "models").glob("*.tmp*"))  # the partial folder was renamed
    again = load_tokenizer()  # from the cache now
    text = "print(sum(range(1, 101)))\n[OUTPUT]"
    assert again.encode(text) == first.encode(text)
    assert again.eos_token_id == first.eos_token_id
