#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Configures and builds apr into build/ (binary: build/bin/apr, plugins: build/lib/apr/plugins).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=${APR_BUILD_TYPE:-Release} \
  -DPython3_EXECUTABLE="$PWD/.venv/bin/python" ${APR_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
