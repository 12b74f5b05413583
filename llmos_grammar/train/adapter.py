"""Loading a LoRA adapter written by `llmos-train` onto a LoadedModel (transformers engine)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from llmos_grammar.errors import ModelError
from llmos_grammar.models import LoadedModel
from llmos_grammar.visible import visible

ADAPTER_CONFIG = "adapter_config.json"
TRAIN_INFO = "llmos_train.json"  # what llmos-train wrote next to the adapter


def check_adapter(path: str | Path) -> Path:
    """The adapter folder, or a ModelError saying what is missing."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"--adapter: no such folder: {folder}")
    if not (folder / ADAPTER_CONFIG).is_file():
        raise ModelError(
            f"--adapter: {folder} has no {ADAPTER_CONFIG} (give the --out folder of llmos-train)"
        )
    return folder


def load_adapter(lm: LoadedModel, path: str | Path) -> LoadedModel:
    """`lm` with the LoRA adapter in `path` merged into its weights (decoding at base speed)."""
    from llmos_grammar.engines import engine_entry

    folder = check_adapter(path)
    if not engine_entry(lm.engine).capabilities.adapters:
        raise ModelError("LoRA adapters run on the transformers engine (--engine transformers)")
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModelError(
            "--adapter needs peft: pip install 'llmos-grammar[train]' (or: bash setup.sh --train)"
        ) from exc
    try:
        model = PeftModel.from_pretrained(lm.model, str(folder)).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"--adapter {folder}: cannot load it onto {lm.name}: {exc}") from exc
    model.eval()
    return replace(lm, model=model, name=f"{lm.name}+{folder.name}")


def train_info(path: str | Path) -> dict[str, object]:
    """What an adapter was trained on and with ({} when not recorded or unreadable)."""
    info = Path(path) / TRAIN_INFO
    if not info.is_file():
        return {}
    try:
        data = json.loads(info.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_digest(path: str | Path) -> str:
    """`sha256:` and the hex digest of a file's bytes (names the exact tasks file trained on)."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def describe_adapter(info: dict[str, object], spec_key: str = "") -> str:
    """One line saying what an adapter was trained on, for `llmos-run --adapter`;
    it says so when the spec it runs under is not the one it was trained with."""
    if not info:
        return "no training record (llmos_train.json) next to the adapter"
    method = str(info.get("method", "grpo"))
    count = info.get("rounds") if method == "rft" else info.get("steps")
    unit = "round(s)" if method == "rft" else "step(s)"
    tasks = info.get("tasks_file", info.get("tasks", "?"))
    digest = str(info.get("tasks_hash", ""))[:19]
    text = (
        f"trained by {method}, {count if count is not None else '?'} {unit}, seed "
        f"{info.get('seed', '?')}, on {visible(str(tasks))}"
        + (f" ({digest})" if digest else "")
        + f", base model {visible(str(info.get('model', '?')))}"
        + f", spec key {info.get('spec_key', '?')}"
    )
    trained_key = info.get("spec_key")
    if spec_key and trained_key and trained_key != spec_key:
        text += f"; the spec run now has key {spec_key}: not the spec it was trained with"
    return text
