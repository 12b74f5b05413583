"""A LoRA adapter from llmos-train written as a GGUF LoRA adapter that llama.cpp applies.

The transformers engine runs the default GGUF de-quantized, so an adapter trained
there is a low-rank change to exactly the weights llama.cpp holds. llama.cpp
loads it beside the unchanged GGUF (`llama_adapter_lora_init`) and adds
`scale * B (A x)` to each adapted matmul, with scale = alpha / rank. The file
holds, per adapted weight `blk.N.attn_q.weight`, the tensors
`blk.N.attn_q.weight.lora_a` (rank x in) and `...lora_b` (out x rank): PEFT's
`lora_A`/`lora_B` layouts, except that llama.cpp's GGUF keeps the query and key
rows permuted for its rotary embedding (as llama.cpp's converter writes them),
so `lora_b` of q_proj and k_proj gets the same row permutation.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from llmos_grammar.errors import ModelError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from llmos_grammar.ir import ModelRef

OutType = Literal["f32", "f16"]
WEIGHTS = "adapter_model.safetensors"
INFO_KEY = "llmos.train_info"  # the adapter's llmos_train.json, as a JSON string
# PEFT's module path in a Llama block -> llama.cpp's tensor name in that block
MODULES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
PERMUTED = {"attn_q": "head_count", "attn_k": "head_count_kv"}  # rows in rotary order
ARCHITECTURES = ("llama",)  # whose tensor names and permutation this follows
_KEY = re.compile(
    r"^base_model\.model\.model\.layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])(?:\.\w+)?\.weight$"
)


@dataclass(frozen=True)
class LoraSettings:
    """What of adapter_config.json the export needs: the rank and alpha per module."""

    r: int
    alpha: float
    rslora: bool
    rank_pattern: Mapping[str, int]
    alpha_pattern: Mapping[str, float]

    def scaling(self, module: str) -> tuple[int, float]:
        """(rank, PEFT's scaling) of a module path (patterns match its path's end)."""
        r = _pattern(self.rank_pattern, module, self.r)
        alpha = _pattern(self.alpha_pattern, module, self.alpha)
        return int(r), alpha / (math.sqrt(r) if self.rslora else r)


@dataclass(frozen=True)
class BaseModel:
    """The GGUF an adapter is exported for: architecture, head counts, weight shapes."""

    path: Path
    architecture: str
    heads: Mapping[str, int]  # head_count, head_count_kv
    shapes: Mapping[str, tuple[int, int]]  # tensor name -> (rows out, columns in)


@dataclass(frozen=True)
class Exported:
    """What `export_lora` wrote."""

    path: Path
    base: Path
    tensors: int  # adapted weights (each an a/b pair)
    rank: int
    alpha: float
    bytes: int


def export_lora(
    adapter: str | Path,
    out: str | Path,
    *,
    model: ModelRef | None = None,
    outtype: OutType = "f32",
) -> Exported:
    """Write the PEFT LoRA adapter folder `adapter` as a GGUF LoRA adapter for `model`'s
    GGUF (the default model when None); ModelError says what does not fit."""
    from llmos_grammar.train.adapter import check_adapter, train_info

    folder = check_adapter(adapter)
    settings = lora_settings(folder)
    base = base_model(model)
    pairs = lora_pairs(folder, settings, base)
    if not pairs:
        raise ModelError(f"{folder}: the adapter adapts no weight of {base.path.name}")
    info = train_info(folder)
    target = Path(out)
    _write(target, base, pairs, settings.alpha, outtype, info)
    ranks = {a.shape[0] for a, _ in pairs.values()}
    return Exported(
        target, base.path, len(pairs), max(ranks), settings.alpha, target.stat().st_size
    )


def exported_train_info(path: str | Path) -> dict[str, object]:
    """The llmos_train.json an exported adapter carries ({} when it has none or the file is
    not a GGUF)."""
    import gguf

    try:
        field = gguf.GGUFReader(str(path)).fields.get(INFO_KEY)
        data = json.loads(field.contents()) if field is not None else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def lora_settings(folder: Path) -> LoraSettings:
    """The adapter's LoRA settings; ModelError for what llama.cpp cannot apply."""
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ModelError(f"{folder}/adapter_config.json is not a JSON object")
    refused = {
        "peft_type": config.get("peft_type", "LORA") != "LORA",
        "use_dora": bool(config.get("use_dora")),
        "bias": config.get("bias", "none") != "none",
        "modules_to_save": bool(config.get("modules_to_save")),
        "fan_in_fan_out": bool(config.get("fan_in_fan_out")),
        "lora_bias": bool(config.get("lora_bias")),
        "trainable_token_indices": bool(config.get("trainable_token_indices")),
        "target_parameters": bool(config.get("target_parameters")),
    }
    bad = [name for name, is_bad in refused.items() if is_bad]
    if bad:
        raise ModelError(
            f"{folder}: llama.cpp applies plain LoRA only; this adapter sets {', '.join(bad)}"
        )
    return LoraSettings(
        r=int(config["r"]),
        alpha=float(config["lora_alpha"]),
        rslora=bool(config.get("use_rslora")),
        rank_pattern=dict(config.get("rank_pattern") or {}),
        alpha_pattern=dict(config.get("alpha_pattern") or {}),
    )


def base_model(ref: ModelRef | None) -> BaseModel:
    """The GGUF behind `ref` (the default model when None), read without loading weights."""

    from llmos_grammar.ir import ModelRef
    from llmos_grammar.models import resolve

    folder, name = resolve(ref or ModelRef())
    if name is None:
        raise ModelError(
            f"llama.cpp runs GGUF models; {(ref or ModelRef()).name!r} is not one "
            "(--model takes a .gguf file)"
        )
    path = Path(folder) / name
    try:
        info = path.stat()
        return _read_base(str(path), info.st_size, info.st_mtime_ns)
    except (OSError, ValueError) as exc:  # gguf raises ValueError on what is not a GGUF
        raise ModelError(f"cannot read the GGUF model {path}: {exc}") from exc


@functools.cache
def _read_base(path: str, size: int, mtime_ns: int) -> BaseModel:
    """`base_model`'s reading, once per file version (GGUFReader parses every field, the
    vocabulary included: seconds)."""
    import gguf

    reader = gguf.GGUFReader(path)

    def value(key: str) -> object:
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture")
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ModelError(
            f"{Path(path).name}: exporting adapters for the {arch!r} architecture is not "
            f"supported (only {', '.join(ARCHITECTURES)})"
        )
    heads = {k: value(f"{arch}.attention.{k}") for k in set(PERMUTED.values())}
    counts = {k: v for k, v in heads.items() if isinstance(v, int)}
    if len(counts) != len(heads):
        raise ModelError(f"{Path(path).name} does not say its attention head counts")
    shapes = {
        t.name: (int(t.shape[1]), int(t.shape[0])) for t in reader.tensors if len(t.shape) == 2
    }
    return BaseModel(Path(path), arch, counts, shapes)


def lora_pairs(
    folder: Path, settings: LoraSettings, base: BaseModel
) -> dict[str, tuple[NDArray[np.float32], NDArray[np.float32]]]:
    """llama.cpp's weight name -> (lora_a, lora_b), in its layout, each scale folded in."""
    found: dict[str, dict[str, NDArray[np.float32]]] = {}
    modules: dict[str, str] = {}
    for key, value in _tensors(folder).items():
        match = _KEY.match(key)
        if match is None or match[2] not in MODULES:
            raise ModelError(
                f"{folder}: cannot export the adapter tensor {key!r}: llama.cpp adapters "
                f"cover the linear layers of the blocks ({', '.join(MODULES)})"
            )
        name = f"blk.{match[1]}.{MODULES[match[2]]}.weight"
        found.setdefault(name, {})[match[3]] = value
        modules[name] = f"model.layers.{match[1]}.{match[2]}"
    pairs = {}
    for name, halves in sorted(found.items(), key=lambda item: _order(item[0])):
        if set(halves) != {"A", "B"}:
            raise ModelError(f"{folder}: {modules[name]} has lora_A or lora_B but not both")
        pairs[name] = _pair(name, halves["A"], halves["B"], settings, modules[name], base)
    return pairs


def _pair(
    name: str,
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    settings: LoraSettings,
    module: str,
    base: BaseModel,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """One weight's (lora_a, lora_b) checked against the base and put in llama.cpp's terms."""
    shape = base.shapes.get(name)
    if shape is None:
        raise ModelError(f"{base.path.name} has no tensor {name} for the adapter's {module}")
    rank = a.shape[0]
    if a.shape != (rank, shape[1]) or b.shape != (shape[0], rank):
        raise ModelError(
            f"{module}: lora_A {a.shape} and lora_B {b.shape} do not fit {name} "
            f"{shape} of {base.path.name} (an adapter trained on another model?)"
        )
    r, scaling = settings.scaling(module)
    if r != rank:
        raise ModelError(f"{module}: rank {rank} in the weights, {r} in adapter_config.json")
    # llama.cpp scales by alpha / rank: fold what PEFT's scaling differs by into B
    fold = scaling * rank / settings.alpha
    if fold != 1.0:
        b = b * fold
    kind = name.split(".")[2]
    if kind in PERMUTED:
        b = rotary_rows(b, base.heads[PERMUTED[kind]])
    return a, b


def rotary_rows(weight: NDArray[np.float32], heads: int) -> NDArray[np.float32]:
    """Rows of a query or key projection in llama.cpp's order (its converter's `permute`):
    per head, the two halves of the rotary dimensions interleaved."""
    rows = weight.shape[0]
    split = weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
    return split.swapaxes(1, 2).reshape(weight.shape)


def _write(
    target: Path,
    base: BaseModel,
    pairs: Mapping[str, tuple[NDArray[np.float32], NDArray[np.float32]]],
    alpha: float,
    outtype: OutType,
    info: Mapping[str, object],
) -> None:
    """The GGUF file, written next to `target` and renamed into place."""
    import gguf
    import numpy as np

    dtype = np.float16 if outtype == "f16" else np.float32
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(str(partial), base.architecture)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(target.stem)
        if info:
            writer.add_string(INFO_KEY, json.dumps(info, sort_keys=True))
        for name, (a, b) in pairs.items():
            writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a, dtype=dtype))
            writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b, dtype=dtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ModelError(f"cannot write {target}: {exc}") from exc
    finally:
        writer.close()
    os.replace(partial, target)


def _tensors(folder: Path) -> dict[str, NDArray[np.float32]]:
    """The adapter's tensors as float32 arrays (bfloat16 ones too, through torch)."""
    path = folder / WEIGHTS
    if not path.is_file():
        raise ModelError(f"{folder} has no {WEIGHTS} (give the --out folder of llmos-train)")
    from safetensors.torch import load_file

    try:
        loaded = load_file(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return {name: t.float().numpy() for name, t in loaded.items()}


def _pattern(patterns: Mapping[str, float], module: str, default: float) -> float:
    """PEFT's rank/alpha pattern lookup: the first key that ends the module's path."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?{key}$", module):
            return float(value)
    return default


def _order(name: str) -> tuple[int, str]:
    return int(name.split(".")[1]), name
