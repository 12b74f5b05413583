"""Shared test setup: markers by test file, and the engine real-model tests run on.

Helpers that build specs, tiny models and scripted runs live in `tests/specs.py`
and `tests/test_runtime_helpers.py`; this file holds what applies to many files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Whole files that take long (the hostile corpus in every sandbox mode, the sandbox modes,
# grammar corpora and HumanEval programs, hypothesis runs over hostile YAML, backends'
# property tests): `pytest -m "not slow and not model"` skips them.
SLOW_FILES = frozenset(
    {
        "test_sandbox_hostile.py",
        "test_sandbox_lifeline.py",
        "test_sandbox.py",
        "test_grammars.py",
        "test_bad_input.py",
        "test_yamldoc.py",
        "test_backends_property.py",
        "test_noclose.py",
        "test_train.py",
    }
)
# Real-model tests whose expected texts were written against the transformers engine
# (llama.cpp's kernels give other greedy texts); its own tests are in this file.
LLAMACPP_TESTS = "test_engine_llamacpp.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def transformers_for_model_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`engine: auto` means transformers in real-model tests, also where llama-cpp-python
    is installed (auto would pick llama.cpp for the default GGUF model there)."""
    if request.node.get_closest_marker("model") is None:
        return
    if Path(str(request.node.fspath)).name == LLAMACPP_TESTS:
        return
    from dataclasses import replace

    from llmos_grammar.engines import ENGINES

    monkeypatch.setitem(ENGINES, "llamacpp", replace(ENGINES["llamacpp"], auto=None))
