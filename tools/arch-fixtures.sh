#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Re-creates tests/fixtures/arch/<family>/ for qwen3, gemma2, gemma3 and phi3: a tiny random
# transformers model of each (Qwen3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM,
# Phi3ForCausalLM), converted to an f32 GGUF by llama.cpp's own convert_hf_to_gguf.py, with the
# float64 logits transformers computes for every position of fixed prompts, a float64 reference
# trace (tools/hf_trace.py) and the versions and config used (what each holds, and why the
# shapes and caps are what they are: tools/arch_fixtures.py). tests/arch compares apr with them;
# it needs neither torch nor llama.cpp.
#
# Needs an interpreter with torch, transformers, safetensors, tokenizers, sentencepiece and numpy
# (not the default environment) and llama.cpp's source: the one the PyPI sdist llama-cpp-python
# carries (its vendor/llama.cpp, with gguf-py), downloaded and unpacked into the cache once
# (tools/llama-cpp.sh). Nothing is built.
#
#   HF_PYTHON=~/.cache/apr-hf/venv/bin/python tools/arch-fixtures.sh
#   HF_PYTHON=... tools/arch-fixtures.sh --out /tmp/arch --families gemma2   # to compare
#
# Options:
#   --cache DIR        cache holding src/llama_cpp_python-<version> (default $APR_BENCH_CACHE or
#                      ~/.cache/apr-bench)
#   --out DIR          fixture root (default tests/fixtures/arch)
#   --families LIST    comma-separated subset of qwen3,gemma2,gemma3,phi3
# With the same versions of torch, transformers, sentencepiece and the converter, the files come
# out byte for byte the same (fixture.json lists their sha256).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${APR_BENCH_CACHE:-$HOME/.cache/apr-bench}"
OUT="$REPO/tests/fixtures/arch"
FAMILIES=""
PY="${HF_PYTHON:-python3}"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"

die() {
  echo "arch-fixtures: error: $*" >&2
  exit 2
}
note() { echo "arch-fixtures: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="${2:?--cache needs a directory}"; shift ;;
    --out) OUT="${2:?--out needs a directory}"; shift ;;
    --families) FAMILIES="${2:?--families needs a list}"; shift ;;
    -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

if ! "$PY" -c "import torch, transformers, safetensors, tokenizers, sentencepiece, numpy" \
    2>/dev/null; then
  die "$PY lacks torch, transformers, safetensors, tokenizers, sentencepiece or numpy" \
    "(set HF_PYTHON)"
fi
mkdir -p "$CACHE" "$OUT"

# shellcheck source=tools/llama-cpp.sh
. "$REPO/tools/llama-cpp.sh"
src="$(llama_source)"
if [ ! -f "$src/convert_hf_to_gguf.py" ] || [ ! -d "$src/gguf-py" ]; then
  die "no convert_hf_to_gguf.py and gguf-py under $src"
fi

note "converter: $src/convert_hf_to_gguf.py"
args=(--llama-cpp "$src" --out "$OUT")
[ -z "$FAMILIES" ] || args+=(--families "$FAMILIES")
PYTHONPATH="$src/gguf-py${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" "$REPO/tools/arch_fixtures.py" "${args[@]}"
note "wrote $OUT"
