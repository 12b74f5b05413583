"""Loading a LoRA adapter written by `llmos-train` onto a LoadedModel (transformers engine)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from llmos_grammar.errors import ModelError
from llmos_grammar.models import LoadedModel

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
    """The spec and settings an adapter was trained with ({} when not recorded)."""
    info = Path(path) / TRAIN_INFO
    if not info.is_file():
        return {}
    data = json.loads(info.read_text())
    return data if isinstance(data, dict) else {}
