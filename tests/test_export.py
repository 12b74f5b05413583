"""`llmos export`: a PEFT LoRA adapter as a GGUF LoRA adapter that llama.cpp applies.

The first tests write synthetic adapters for the default model's shapes and read
the GGUF back (no weights loaded). The round trip (where llama-cpp-python is
installed) trains nothing: a LoRA with random, non-zero B on the default
model's transformers weights, exported and loaded by llama.cpp beside the
shipped GGUF, must give the logits the transformers engine gives with the
adapter merged, within the error llama.cpp's quantized kernels already have
without an adapter, and the calculator's answers.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from llmos_grammar.errors import ModelError
from llmos_grammar.ir import ModelRef
from llmos_grammar.train.export import INFO_KEY, base_model, export_lora, rotary_rows

# (out, in) of each adapted weight of a SmolLM2-135M block
SHAPES = {
    "self_attn.q_proj": (576, 576),
    "self_attn.k_proj": (192, 576),
    "self_attn.v_proj": (192, 576),
    "self_attn.o_proj": (576, 576),
    "mlp.gate_proj": (1536, 576),
    "mlp.up_proj": (1536, 576),
    "mlp.down_proj": (576, 1536),
}


def write_adapter(
    folder: Path,
    *,
    r: int = 4,
    alpha: float = 8.0,
    layers: tuple[int, ...] = (0, 3),
    config: dict[str, object] | None = None,
    shapes: dict[str, tuple[int, int]] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    ranks: dict[str, int] | None = None,
) -> dict[str, torch.Tensor]:
    """A PEFT-style adapter folder (adapter_config.json, adapter_model.safetensors)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    tensors: dict[str, torch.Tensor] = {}
    for layer in layers:
        for module, (rows, cols) in (shapes or SHAPES).items():
            rank = (ranks or {}).get(module, r)
            key = f"base_model.model.model.layers.{layer}.{module}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(rank, cols, generator=generator)
            tensors[f"{key}.lora_B.weight"] = torch.randn(rows, rank, generator=generator)
    tensors.update(extra or {})
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    settings = {
        "peft_type": "LORA",
        "r": r,
        "lora_alpha": alpha,
        "bias": "none",
        "use_dora": False,
        "use_rslora": False,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"],
        "rank_pattern": {},
        "alpha_pattern": {},
        **(config or {}),
    }
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    return tensors


def read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, tensors) of a GGUF file."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    return fields, {t.name: t for t in reader.tensors}


def test_rotary_rows_interleave_the_halves_of_each_head() -> None:
    weight = np.arange(8, dtype=np.float32).reshape(8, 1)
    # two heads of four rows: (0 1 | 2 3) -> 0 2 1 3, as llama.cpp's converter permutes
    assert rotary_rows(weight, 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    wide = np.arange(24, dtype=np.float32).reshape(4, 6)
    assert rotary_rows(wide, 1).tolist() == wide[[0, 2, 1, 3]].tolist()  # whole rows move


def test_the_default_model_is_read_without_its_weights() -> None:
    base = base_model(None)
    assert base.architecture == "llama"
    assert base.heads == {"head_count": 9, "head_count_kv": 3}
    assert base.shapes["blk.0.attn_k.weight"] == (192, 576)
    assert base.shapes["blk.29.ffn_down.weight"] == (576, 1536)


def test_export_writes_llama_cpp_names_layouts_and_metadata(tmp_path: Path) -> None:
    tensors = write_adapter(tmp_path / "adapter")
    (tmp_path / "adapter" / "llmos_train.json").write_text(json.dumps({"method": "rft"}))
    done = export_lora(tmp_path / "adapter", tmp_path / "out.gguf")
    assert (done.tensors, done.rank, done.alpha) == (14, 4, 8.0)
    fields, out = read(tmp_path / "out.gguf")
    assert fields["general.architecture"] == "llama"
    assert fields["general.type"] == "adapter"
    assert fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == pytest.approx(8.0)
    assert json.loads(fields[INFO_KEY]) == {"method": "rft"}
    names = {f"blk.{i}.{m}.weight.lora_{h}" for i in (0, 3) for m in
             ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
             for h in "ab"}  # fmt: skip
    assert set(out) == names
    # ggml order (ne0 first): lora_a is [in, rank], lora_b [rank, out], as llama.cpp checks
    assert out["blk.3.ffn_down.weight.lora_a"].shape.tolist() == [1536, 4]
    assert out["blk.3.ffn_down.weight.lora_b"].shape.tolist() == [4, 576]
    key = "base_model.model.model.layers.3"

    def data(name: str) -> np.ndarray:
        return np.asarray(out[name].data, dtype=np.float32)

    np.testing.assert_array_equal(
        data("blk.3.attn_q.weight.lora_a"), tensors[f"{key}.self_attn.q_proj.lora_A.weight"]
    )
    np.testing.assert_array_equal(
        data("blk.3.attn_v.weight.lora_b"), tensors[f"{key}.self_attn.v_proj.lora_B.weight"]
    )
    q_b = tensors[f"{key}.self_attn.q_proj.lora_B.weight"].numpy()
    k_b = tensors[f"{key}.self_attn.k_proj.lora_B.weight"].numpy()
    np.testing.assert_array_equal(data("blk.3.attn_q.weight.lora_b"), rotary_rows(q_b, 9))
    np.testing.assert_array_equal(data("blk.3.attn_k.weight.lora_b"), rotary_rows(k_b, 3))
    assert not np.array_equal(rotary_rows(q_b, 9), q_b)


def test_scales_llama_cpp_cannot_express_are_folded_into_b(tmp_path: Path) -> None:
    # llama.cpp scales by alpha / rank; rsLoRA scales by alpha / sqrt(rank), and patterns
    # give a module its own rank or alpha: B carries the difference
    config: dict[str, object] = {"use_rslora": True, "alpha_pattern": {"v_proj": 16.0}}
    tensors = write_adapter(tmp_path / "adapter", r=4, alpha=8.0, layers=(1,), config=config)
    export_lora(tmp_path / "adapter", tmp_path / "out.gguf")
    _, out = read(tmp_path / "out.gguf")
    key = "base_model.model.model.layers.1"
    up = tensors[f"{key}.mlp.up_proj.lora_B.weight"].numpy()
    v = tensors[f"{key}.self_attn.v_proj.lora_B.weight"].numpy()
    # up: PEFT 8 / sqrt(4) = 4, llama.cpp 8 / 4 = 2 -> x2; v: 16 / 2 = 8 against 2 -> x4
    np.testing.assert_allclose(out["blk.1.ffn_up.weight.lora_b"].data, 2 * up, rtol=1e-6)
    np.testing.assert_allclose(out["blk.1.attn_v.weight.lora_b"].data, 4 * v, rtol=1e-6)


def test_a_rank_pattern_keeps_each_modules_rank(tmp_path: Path) -> None:
    config: dict[str, object] = {"rank_pattern": {"q_proj": 2}}
    tensors = write_adapter(
        tmp_path / "adapter", layers=(2,), config=config, ranks={"self_attn.q_proj": 2}
    )
    export_lora(tmp_path / "adapter", tmp_path / "out.gguf")
    _, out = read(tmp_path / "out.gguf")
    b = tensors["base_model.model.model.layers.2.self_attn.q_proj.lora_B.weight"].numpy()
    assert out["blk.2.attn_q.weight.lora_a"].shape.tolist() == [576, 2]
    # PEFT 8 / 2 = 4; llama.cpp alpha / rank = 8 / 2 = 4: nothing to fold
    np.testing.assert_array_equal(out["blk.2.attn_q.weight.lora_b"].data, rotary_rows(b, 9))


def test_f16_halves_the_file(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapter")
    full = export_lora(tmp_path / "adapter", tmp_path / "f32.gguf")
    half = export_lora(tmp_path / "adapter", tmp_path / "f16.gguf", outtype="f16")
    assert half.bytes < 0.6 * full.bytes
    _, out = read(tmp_path / "f16.gguf")
    assert out["blk.0.attn_q.weight.lora_a"].tensor_type.name == "F16"


@pytest.mark.parametrize(
    ("config", "shapes", "extra", "message"),
    [
        ({"use_dora": True}, None, None, "plain LoRA only; this adapter sets use_dora"),
        ({"modules_to_save": ["lm_head"]}, None, None, "sets modules_to_save"),
        ({}, {"self_attn.q_proj": (576, 100)}, None, r"do not fit blk.0.attn_q.weight"),
        ({}, None, {"base_model.model.lm_head.lora_A.weight": torch.ones(4, 576)},
         "cannot export the adapter tensor 'base_model.model.lm_head"),
        ({}, None, {"base_model.model.model.layers.5.mlp.up_proj.lora_A.weight":
                    torch.ones(4, 576)}, "has lora_A or lora_B but not both"),
        ({"r": 8}, None, None, "rank 4 in the weights, 8 in adapter_config.json"),
    ],
)  # fmt: skip
def test_what_llama_cpp_cannot_apply_is_refused_with_the_reason(
    tmp_path: Path,
    config: dict[str, object],
    shapes: dict[str, tuple[int, int]] | None,
    extra: dict[str, torch.Tensor] | None,
    message: str,
) -> None:
    folder = tmp_path / "adapter"
    write_adapter(folder, layers=(0,), shapes=shapes, extra=extra)
    if config:
        settings = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**settings, **config}))
    with pytest.raises(ModelError, match=message):
        export_lora(folder, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_a_model_that_is_not_a_gguf_is_refused(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapter", layers=(0,))
    with pytest.raises(ModelError, match="GGUF models"):
        export_lora(tmp_path / "adapter", tmp_path / "o.gguf", model=ModelRef(name="org/some"))


def test_llmos_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmos_grammar.cli.main import main

    write_adapter(tmp_path / "adapter", layers=(0,))
    out = tmp_path / "calc.gguf"
    assert main(["export", str(tmp_path / "adapter"), "-o", str(out), "--outtype", "f16"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "7 adapted weights" in printed
    assert f"--adapter {out}" in printed
    assert out.is_file()
    assert main(["export", str(tmp_path / "adapter"), "-o", str(tmp_path / "x.bin")]) == 2
    assert main(["export", str(tmp_path / "none"), "-o", str(out)]) == 2
    assert main(["export", str(tmp_path), "-o", str(out)]) == 2  # no adapter_config.json
    assert "has no adapter_config.json" in capsys.readouterr().err


# ---- the round trip on the default model (llama-cpp-python installed) ---------------------
PROMPTS = (
    "What is 48 times 27? Write Python code that prints the answer.",
    "Anna has 120 stickers and gives away 17. How many stickers does she have left?",
    "What is the remainder when 1000 is divided by 7?",
    "How many seconds are there in 5 hours?",
)
LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
CALCULATOR = Path(__file__).resolve().parent.parent / "examples" / "calculator"


def random_lora(folder: Path, std: float, mild: Path) -> None:
    """A rank-4 LoRA on every linear layer of the default model's transformers weights,
    B drawn at random (PEFT starts it at zero: the adapter would change nothing); `mild`
    gets the same adapter with B at 0.3 of that (for the calculator's greedy texts)."""
    from peft import LoraConfig, get_peft_model

    from llmos_grammar.models import load_model

    model = load_model(ModelRef()).model
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear")
    torch.manual_seed(0)  # PEFT draws A from torch's global generator
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    peft_model.save_pretrained(str(folder))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(0.3)
    peft_model.save_pretrained(str(mild))


def chat_ids(tokenizer: Any, text: str) -> list[int]:
    turn = f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
    return list(tokenizer.encode(turn, add_special_tokens=False))


def transformers_logits(lm: Any, prompts: list[list[int]]) -> np.ndarray:
    with torch.no_grad():
        return np.stack([lm.model(torch.tensor([ids])).logits[0, -1].numpy() for ids in prompts])


def llama_logits(lora: Path | None, prompts: list[list[int]]) -> np.ndarray:
    """Next-token logits of each prompt, each alone in an engine's context (the production
    path: LlamaCppModel applies the adapter in every context it makes)."""
    from llmos_grammar.engines.llamacpp import LlamaCppEngine, LlamaCppModel
    from llmos_grammar.models import default_gguf_path

    model = LlamaCppModel(str(default_gguf_path()), lora=str(lora) if lora else None)
    try:
        rows = []
        for ids in prompts:
            engine = LlamaCppEngine(model, n_ctx=512, rows=1)
            row = engine.open_row()
            engine.append(row, ids)
            rows.append(engine.forward([row])[row].numpy())
            engine.close()
        return np.stack(rows)
    finally:
        model.close()


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from llmos_grammar.models import load_model
    from llmos_grammar.train.adapter import load_adapter

    folder = tmp_path_factory.mktemp("lora")
    random_lora(folder / "adapter", 0.1, folder / "mild")
    export_lora(folder / "adapter", folder / "adapter.gguf")
    export_lora(folder / "mild", folder / "mild.gguf")
    lm = load_model(ModelRef())
    prompts = [chat_ids(lm.tokenizer, text) for text in PROMPTS]
    base = transformers_logits(lm, prompts)
    adapted = load_adapter(lm, folder / "adapter")  # merged, as --adapter DIR runs it
    return {
        "folder": folder,
        "prompts": prompts,
        "hf_base": base,
        "hf_adapter": transformers_logits(adapted, prompts),
        "cpp_base": llama_logits(None, prompts),
        "cpp_adapter": llama_logits(folder / "adapter.gguf", prompts),
    }


def gap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean, max) absolute difference of two logit arrays."""
    difference = np.abs(a - b)
    return float(difference.mean()), float(difference.max())


def within_quantization(cpp: np.ndarray, hf: np.ndarray, base: tuple[float, float]) -> bool:
    """Whether llama.cpp's logits are as close to the transformers engine's as they are
    without the adapter (the quantized kernels' own error), with a margin."""
    mean, top = gap(cpp, hf)
    return mean <= 1.5 * base[0] + 0.02 and top <= 2.0 * base[1] + 0.1


@pytest.mark.model
@pytest.mark.skipif(not LLAMA_CPP, reason="llama-cpp-python is not installed")
def test_exported_adapter_gives_the_transformers_logits_within_quantization(
    round_trip: dict[str, Any],
) -> None:
    base = gap(round_trip["cpp_base"], round_trip["hf_base"])
    error = gap(round_trip["cpp_adapter"], round_trip["hf_adapter"])
    effect = gap(round_trip["hf_adapter"], round_trip["hf_base"])
    print(f"\nnext-token logits, mean/max |difference| over {len(PROMPTS)} prompts:")
    print(f"  llama.cpp vs transformers, base:    {base[0]:.4f} / {base[1]:.4f}")
    print(f"  llama.cpp vs transformers, adapter: {error[0]:.4f} / {error[1]:.4f}")
    print(f"  the adapter's own effect:           {effect[0]:.4f} / {effect[1]:.4f}")
    assert within_quantization(round_trip["cpp_adapter"], round_trip["hf_adapter"], base)
    # the test can tell: the adapter moves the logits far more than the export's error
    assert effect[0] > 3 * error[0]
    # llama.cpp's top token is the transformers engine's, or a near tie of it
    hf, top = round_trip["hf_adapter"], round_trip["cpp_adapter"].argmax(-1)
    chosen = hf[np.arange(len(top)), top]
    assert (chosen >= hf.max(-1) - 2 * error[1]).all()


@pytest.mark.model
@pytest.mark.skipif(not LLAMA_CPP, reason="llama-cpp-python is not installed")
def test_without_the_rotary_permutation_the_logits_part(
    round_trip: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmos_grammar.train.export as export

    monkeypatch.setattr(export, "rotary_rows", lambda weight, heads: weight)
    wrong = round_trip["folder"] / "unpermuted.gguf"
    export_lora(round_trip["folder"] / "adapter", wrong)
    logits = llama_logits(wrong, round_trip["prompts"])
    base = gap(round_trip["cpp_base"], round_trip["hf_base"])
    mean, top = gap(logits, round_trip["hf_adapter"])
    print(f"\n  without the permutation:            {mean:.4f} / {top:.4f}")
    assert not within_quantization(logits, round_trip["hf_adapter"], base)


@pytest.mark.model
@pytest.mark.skipif(not LLAMA_CPP, reason="llama-cpp-python is not installed")
def test_the_calculator_answers_the_same_on_both_engines(round_trip: dict[str, Any]) -> None:
    from llmos_grammar.engines.llamacpp import load_llamacpp
    from llmos_grammar.models import load_model
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec import load
    from llmos_grammar.train.adapter import load_adapter

    machine = load(str(CALCULATOR / "spec.yaml"))
    lines = (CALCULATOR / "heldout.jsonl").read_text().splitlines()[:2]
    tasks = [json.loads(line)["task"] for line in lines]
    texts = {}
    folder = round_trip["folder"]
    for name, lm in (
        ("transformers", load_adapter(load_model(ModelRef()), folder / "mild")),
        ("llamacpp", load_llamacpp(ModelRef(), lora=str(folder / "mild.gguf"))),
    ):
        runtime = Runtime(machine, lm)
        try:
            texts[name] = [runtime.run(task).text for task in tasks]
        finally:
            runtime.close()
    assert texts["llamacpp"] == texts["transformers"]


@pytest.mark.model
@pytest.mark.skipif(not LLAMA_CPP, reason="llama-cpp-python is not installed")
def test_transfer_comparison_pairs_base_and_adapter(
    round_trip: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from llmos_grammar.eval.compare import Budget, compare_adapter
    from llmos_grammar.train.stats import table

    gguf = str(round_trip["folder"] / "mild.gguf")
    rows = compare_adapter(gguf, ["calculator"], Budget(limit=2), progress=False)
    assert [(row.name, row.n) for row in rows] == [("calculator", 2)]
    printed = capsys.readouterr().out
    assert "calculator (base): " in printed and "calculator (adapter): " in printed
    assert table(rows).splitlines()[1].startswith("calculator")


def test_the_exported_file_carries_the_training_record(tmp_path: Path) -> None:
    from llmos_grammar.cli.adapter import adapter_line
    from llmos_grammar.train.export import exported_train_info

    write_adapter(tmp_path / "adapter", layers=(0,))
    record = {"method": "rft", "rounds": 2, "seed": 0, "spec_key": "abc", "tasks_file": "t.jsonl"}
    (tmp_path / "adapter" / "llmos_train.json").write_text(json.dumps(record))
    export_lora(tmp_path / "adapter", tmp_path / "calc.gguf")
    assert exported_train_info(tmp_path / "calc.gguf") == record
    line = adapter_line(str(tmp_path / "calc.gguf"), "abc")
    assert line.startswith(f"adapter {tmp_path / 'calc.gguf'}: trained by rft, 2 round(s)")
    (tmp_path / "plain.gguf").write_bytes(b"not a gguf")
    assert exported_train_info(tmp_path / "plain.gguf") == {}
