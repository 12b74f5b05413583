"""An engine registered from the tests runs a spec end to end through the public API, and every
engine closes when its runtime does; the registry answers without importing engine code."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import torch

import llmos_grammar
from llmos_grammar.engines import (
    ENGINES,
    Capabilities,
    EngineCounters,
    EngineEntry,
    LogitsEngine,
    engine_entry,
    register_engine,
)
from llmos_grammar.errors import ModelError
from llmos_grammar.ir import ModelRef
from llmos_grammar.models import LoadedModel
from tests.test_runtime_helpers import tokenizer

CALCULATOR = Path(__file__).resolve().parents[1] / "examples" / "calculator" / "spec.yaml"
# What the scripted "model" writes after each marker it finds last in a row's text.
SCRIPT = {"print(": "6 * 7)\n", "The answer is": " 42.\n"}


class ScriptedModel:
    """A model whose next token continues the text its script gives after the last marker
    of the row's text, and ends the turn when that text is written."""

    def __init__(self, script: Mapping[str, str]) -> None:
        self.script = dict(script)
        self.eos = int(tokenizer().eos_token_id)
        self.closed = False

    def next_token(self, ids: Sequence[int]) -> int:
        text = tokenizer().decode(list(ids))
        found = [(text.rfind(m), m) for m in self.script if m in text]
        if not found:
            return self.eos
        at, marker = max(found)
        written = text[at + len(marker) :]
        wanted = self.script[marker]
        rest = wanted[len(written) :] if wanted.startswith(written) else ""
        return tokenizer().encode(rest, add_special_tokens=False)[0] if rest else self.eos

    def close(self) -> None:
        self.closed = True


class ScriptedEngine:
    """A LogitsEngine over a ScriptedModel: rows of ids, one logits row per forward."""

    capabilities = Capabilities(
        "logits", shares_prefix=False, saves_state=False, batch_invariant=True
    )

    def __init__(self, model: ScriptedModel, vocab: int) -> None:
        self.model = model
        self.vocab = vocab
        self.counters = EngineCounters()
        self.rows: dict[int, list[int]] = {}
        self.fed: dict[int, int] = {}
        self.opened = 0
        self.closed = False
        STARTED.append(self)

    def open_row(self) -> int:
        assert not self.closed, "a closed engine was used"
        self.opened += 1
        self.rows[self.opened] = []
        self.fed[self.opened] = 0
        return self.opened

    def append(self, row: int, tokens: Sequence[int]) -> None:
        self.rows[row].extend(int(t) for t in tokens)

    def truncate(self, row: int, length: int) -> None:
        del self.rows[row][length:]
        self.fed[row] = min(self.fed[row], length)

    def ids(self, row: int) -> list[int]:
        return self.rows[row]

    def cached(self, row: int) -> int:
        return self.fed[row]

    def row_counters(self, row: int) -> EngineCounters:
        return self.counters

    def close_row(self, row: int) -> None:
        del self.rows[row], self.fed[row]

    def context_window(self) -> int | None:
        return 4096

    def close(self) -> None:
        self.closed = True

    def forward(self, rows: Sequence[int]) -> dict[int, torch.Tensor]:
        out = {}
        for row in rows:
            self.counters.tokens_fed += len(self.rows[row]) - self.fed[row]
            self.fed[row] = len(self.rows[row])
            logits = torch.zeros(self.vocab)
            logits[self.model.next_token(self.rows[row])] = 10.0
            out[row] = logits
        self.counters.forward_passes += 1
        return out


STARTED: list[ScriptedEngine] = []
LOADED: list[ScriptedModel] = []


def load_scripted(ref: ModelRef, engine_args: Mapping[str, str]) -> LoadedModel:
    """The registry's loader of the scripted engine."""
    model = ScriptedModel(SCRIPT)
    LOADED.append(model)
    tok = tokenizer()
    eos = frozenset({int(tok.eos_token_id)})
    device = torch.device("cpu")
    return LoadedModel(
        model, tok, device, len(tok), eos, "scripted", engine="scripted", closer=model.close
    )


def start_scripted(lm: LoadedModel, prefix: Sequence[int]) -> ScriptedEngine:
    """The registry's starter of the scripted engine."""
    assert isinstance(lm.model, ScriptedModel)
    return ScriptedEngine(lm.model, lm.vocab_size)


@pytest.fixture
def scripted() -> Iterator[EngineEntry]:
    entry = EngineEntry(
        "scripted",
        ScriptedEngine.capabilities,
        load=f"{__name__}:load_scripted",
        start=f"{__name__}:start_scripted",
    )
    register_engine(entry)
    STARTED.clear()
    LOADED.clear()
    try:
        yield entry
    finally:
        del ENGINES["scripted"]


def test_a_registered_engine_runs_a_spec_end_to_end(scripted: EngineEntry) -> None:
    machine = llmos_grammar.load(CALCULATOR)
    with llmos_grammar.Runtime(machine, engine="scripted") as rt:
        result = rt.run("What is 6 times 7?")
        assert isinstance(STARTED[0], LogitsEngine)
    assert result.ok, result.message
    code, output = "[CODE]\nprint(6 * 7)\n[/CODE]", "\n[OUTPUT]\n42\n[/OUTPUT]\n"
    assert result.text == code + output + "The answer is 42.\n"
    assert [a.result.stdout for a in result.actions] == ["42\n"]  # the real python action
    # one engine for the runtime; its row given back; engine and model closed with it
    assert len(STARTED) == 1 and STARTED[0].rows == {}
    assert STARTED[0].closed and LOADED[0].closed


def test_batches_and_runs_of_a_runtime_share_its_one_engine(scripted: EngineEntry) -> None:
    machine = llmos_grammar.load(CALCULATOR)
    rt = llmos_grammar.Runtime(machine, engine="scripted")
    try:
        first = rt.run("What is 6 times 7?")
        batch = rt.run_batch(["What is 6 times 7?", "And 7 times 6?"], batch=2)
    finally:
        rt.close()
    assert [r[0].text for r in batch] == [first.text, first.text]
    assert len(STARTED) == 1 and STARTED[0].opened == 3 and STARTED[0].closed
    rt.close()  # closing twice does nothing more


def test_capabilities_not_names_decide(scripted: EngineEntry) -> None:
    from llmos_grammar.engines.select import choose

    machine = llmos_grammar.load(CALCULATOR)
    assert choose("scripted", machine.model) == "scripted"
    with pytest.raises(ModelError, match="for --engine vllm only"):
        choose("scripted", machine.model, engine_args={"url": "http://h:1"})
    with pytest.raises(ModelError, match="LoRA adapters run on the transformers engine"):
        choose("scripted", machine.model, adapter=True)
    with pytest.raises(ValueError, match="already registered"):
        register_engine(scripted)
    with pytest.raises(ModelError, match="unknown engine 'nope'.*scripted"):
        engine_entry("nope")


def load_segments(ref: ModelRef, engine_args: Mapping[str, str]) -> LoadedModel:
    """A loader for an engine that gives segments (none is started in these tests)."""
    from dataclasses import replace

    return replace(load_scripted(ref, engine_args), engine="scripted-segments")


@pytest.fixture
def scripted_segments(scripted: EngineEntry) -> Iterator[str]:
    """The scripted engine registered again as one that gives segments, for the test only."""
    from dataclasses import replace

    segments = replace(
        scripted,
        name="scripted-segments",
        capabilities=replace(scripted.capabilities, output="segments"),
        load=f"{__name__}:load_segments",
    )
    register_engine(segments)
    try:
        yield segments.name
    finally:
        del ENGINES[segments.name]


def test_logits_processors_need_an_engine_that_gives_logits(scripted_segments: str) -> None:
    machine = llmos_grammar.load(CALCULATOR)
    with pytest.raises(ValueError, match="need an engine that gives logits"):
        llmos_grammar.Runtime(
            machine, engine=scripted_segments, logits_processors=[lambda s, t, x: None]
        )
    assert LOADED[0].closed  # the runtime loaded it, so it closed it before raising


def test_each_engine_class_declares_its_registry_capabilities() -> None:
    from llmos_grammar.engines.llamacpp import LlamaCppEngine
    from llmos_grammar.engines.transformers import TransformersEngine
    from llmos_grammar.engines.vllm.engine import VLLMEngine

    for name, cls in [
        ("transformers", TransformersEngine),
        ("llamacpp", LlamaCppEngine),
        ("vllm", VLLMEngine),
    ]:
        assert cls.capabilities == ENGINES[name].capabilities, name


def test_asking_the_registry_imports_no_engine() -> None:
    code = (
        "import sys\n"
        "from llmos_grammar.engines import ENGINES\n"
        "from llmos_grammar.engines.select import choose\n"
        "from llmos_grammar.ir import ModelRef\n"
        "caps = {n: e.capabilities.output for n, e in ENGINES.items()}\n"
        "choose('transformers', ModelRef())\n"
        "loaded = [m for m in sys.modules if m.startswith(('torch', 'transformers', 'llama_cpp'))"
        " or m.startswith('llmos_grammar.engines.') and m.split('.')[2] not in"
        " ('base', 'registry', 'rows', 'select')]\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_spec_schema_names_the_engines_and_dtypes_of_the_ir() -> None:
    import json
    from typing import get_args

    from llmos_grammar.ir import Dtype, EngineChoice

    path = Path(llmos_grammar.__file__).parent / "spec" / "schema" / "spec.schema.json"
    schema = json.loads(path.read_text())
    assert schema["properties"]["engine"]["enum"] == list(get_args(EngineChoice))
    assert set(get_args(EngineChoice)) == {"auto", "transformers", "llamacpp", "vllm"}
    assert {"transformers", "llamacpp", "vllm"} <= set(ENGINES)
    model = schema["$defs"]["model"]["oneOf"][1]["properties"]
    assert model["dtype"]["enum"] == list(get_args(Dtype))


def test_a_session_runs_on_a_registered_engine_and_asks_its_window(
    scripted: EngineEntry,
) -> None:
    machine = llmos_grammar.load(CALCULATOR)
    with llmos_grammar.Session(machine, engine="scripted") as session:
        assert session.max_context == 4096  # the engine's context_window()
        first = session.send("What is 6 times 7?")
        second = session.send("And 7 times 6?")
    assert first.ok and second.ok and "42" in second.text
    assert STARTED[0].closed and LOADED[0].closed


def test_a_session_refuses_an_engine_that_gives_segments(scripted_segments: str) -> None:
    from llmos_grammar.errors import SessionError

    machine = llmos_grammar.load(CALCULATOR)
    with pytest.raises(SessionError, match="an engine that gives logits"):
        llmos_grammar.Session(machine, engine=scripted_segments)
    assert LOADED[0].closed and STARTED == []  # closed without starting an engine
