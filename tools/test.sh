#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Command 2 of the README: build if needed, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || tools/build.sh
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
