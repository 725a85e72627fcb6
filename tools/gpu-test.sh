#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One command for a machine with an NVIDIA GPU, run from the repository root:
#   tools/gpu-test.sh
# Builds everything into build-gpu with the CUDA plugin, runs the whole ctest suite with the CUDA
# tests required to find the GPU, runs compute-sanitizer memcheck on the CUDA kernel tests,
# compares cpu and cuda layer by layer with `apr bisect` on generated models, and benchmarks
# both with `apr bench`. Each step prints PASS or FAIL and the script carries on; the exit status
# is nonzero if any step failed. Logs go to ${OUT:-./gpu-out}.
#
# Environment: OUT (log folder), BUILD_DIR (default build-gpu), JOBS (default nproc),
# CUDA_ARCHS (default: the project's "80;90"), STEP_TIMEOUT (seconds per step, default 900),
# SKIP_DEPS=1 (do not try to install missing Debian packages).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

OUT=${OUT:-./gpu-out}
BUILD_DIR=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export OUT BUILD_DIR JOBS
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
failures=0

export PATH="$PATH:/usr/local/cuda/bin"
# The CUDA tests fail (instead of reporting "skipped") when this machine has no usable GPU.
export APR_EXPECT_CUDA_GPU=1

# step NAME COMMAND...: runs COMMAND with its output in $OUT/NAME.log and records PASS or FAIL.
step() {
  local name=$1
  shift
  local log="$OUT/$name.log" start rc
  start=$(date +%s)
  if declare -F "$1" >/dev/null; then
    # timeout runs programs, not shell functions: hand the function to a child bash.
    # shellcheck disable=SC2163  # exports the function named by $1
    export -f "$1"
    timeout --kill-after=10 "$STEP_TIMEOUT" bash -c '"$@"' step "$@" >"$log" 2>&1
  else
    timeout --kill-after=10 "$STEP_TIMEOUT" "$@" >"$log" 2>&1
  fi
  rc=$?
  local secs=$(($(date +%s) - start))
  if [ $rc -eq 0 ]; then
    echo "PASS $name (${secs}s)" | tee -a "$SUMMARY"
  else
    [ $rc -eq 124 ] && echo "(timed out after ${STEP_TIMEOUT}s)" >>"$log"
    echo "FAIL $name (exit $rc, ${secs}s, log: $log)" | tee -a "$SUMMARY"
    tail -n 15 "$log" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
  return $rc
}

# --- toolchain ------------------------------------------------------------------------------
install_missing_packages() {
  local packages=(cmake ninja-build g++ pkg-config libboost-dev libboost-program-options-dev
    libboost-filesystem-dev libspdlog-dev libfmt-dev catch2 nlohmann-json3-dev libssl-dev
    python3)
  # The model generator needs numpy; Debian's is enough when there is no .venv.
  if ! .venv/bin/python -c "import numpy" 2>/dev/null && ! python3 -c "import numpy" 2>/dev/null; then
    packages+=(python3-numpy)
  fi
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "all Debian packages present"
    return 0
  fi
  echo "missing: ${missing[*]}"
  [ "${SKIP_DEPS:-0}" = 1 ] && return 1
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
}

show_machine() {
  command -v nvcc && nvcc --version
  command -v nvidia-smi && nvidia-smi
  cmake --version | head -n 1
  g++ --version | head -n 1
}

step deps install_missing_packages
step machine show_machine

PYTHON=""
for candidate in .venv/bin/python python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c "import numpy" 2>/dev/null; then
    PYTHON=$(command -v "$candidate")
    break
  fi
done
export PYTHON

# --- build ----------------------------------------------------------------------------------
configure() {
  local args=(-S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPR_BUILD_CUDA=ON)
  [ -n "$PYTHON" ] && args+=("-DPython3_EXECUTABLE=$PYTHON")
  [ -n "${CUDA_ARCHS:-}" ] && args+=("-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS")
  cmake "${args[@]}" || return 1
  # A configure that quietly skipped the plugin would make every later step meaningless.
  grep -q "apr_plugin_cuda" "$BUILD_DIR/build.ninja" || {
    echo "the CUDA plugin is not part of this build"
    return 1
  }
}

build_cuda_plugin() {
  # Timed on its own: compile time of the .cu files is a budget the project watches.
  local start
  start=$(date +%s%N)
  cmake --build "$BUILD_DIR" --target apr_plugin_cuda -j "$JOBS" || return 1
  echo "cuda plugin build: $((($(date +%s%N) - start) / 1000000)) ms with $JOBS jobs"
}

step configure configure
step build-cuda-plugin build_cuda_plugin
step build-all cmake --build "$BUILD_DIR" -j "$JOBS"

# --- tests ----------------------------------------------------------------------------------
step ctest-cuda ctest --test-dir "$BUILD_DIR" --output-on-failure -R "cuda"
step ctest-all ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"

find_sanitizer() {
  for s in compute-sanitizer /usr/local/cuda/bin/compute-sanitizer \
    /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    command -v "$s" >/dev/null 2>&1 && { command -v "$s"; return 0; }
  done
  return 1
}

find_binary() { find "$BUILD_DIR" -type f -name "$1" -perm -u+x 2>/dev/null | head -n 1; }

CUDA_PLUGIN=$(find "$BUILD_DIR" -name 'apr-plugin-cuda.so' -type f 2>/dev/null | head -n 1)
export CUDA_PLUGIN
export -f find_sanitizer

memcheck() {
  local sanitizer binary=$1
  sanitizer=$(find_sanitizer) || { echo "compute-sanitizer not found"; return 1; }
  [ -n "$binary" ] || { echo "test binary not built"; return 1; }
  [ -n "$CUDA_PLUGIN" ] || { echo "cuda plugin not built"; return 1; }
  APR_TEST_PLUGIN="$CUDA_PLUGIN" "$sanitizer" --tool memcheck --error-exitcode 86 \
    --print-limit 50 "$binary"
}

step memcheck-cuda-plugin-tests memcheck "$(find_binary cuda_plugin_tests)"
step memcheck-kernels-cuda memcheck "$(find_binary apr_kernel_tests)"

# --- end to end: cpu against cuda, layer by layer, and throughput ---------------------------
APR=$(find_binary apr)
export APR

run_apr() {
  [ -n "$APR" ] || { echo "the apr binary was not built"; return 1; }
  "$APR" "$@"
}
# The plugin ABI's own conformance checks, as a third-party plugin author would run them.
step plugin-check-cuda run_apr plugin-check "$CUDA_PLUGIN"

MODELS="$BUILD_DIR/gpu-test-models"
mkdir -p "$MODELS"

gen_model() {  # gen_model FILE ARGS...
  local file=$1
  shift
  [ -s "$file" ] && return 0
  [ -n "$PYTHON" ] || { echo "no Python with numpy (create .venv: tools/install-deps.sh)"; return 1; }
  # Written aside and renamed, so a step killed half way leaves no file that looks complete.
  local partial="${file%.gguf}.partial.gguf"
  "$PYTHON" tools/gen_model.py "$@" --out "$partial" && mv "$partial" "$file"
}

bisect_models=(
  "qwen2-tiny-f32:--arch qwen2 --preset tiny --type F32"
  "qwen2-tiny-f16:--arch qwen2 --preset tiny --type F16"
  "qwen2-tiny-q8_0:--arch qwen2 --preset tiny --type Q8_0"
  "qwen2-tiny-q4_k_m:--arch qwen2 --preset tiny --type Q4_K_M"
  "llama-tiny-q4_0:--arch llama --preset tiny --type Q4_0"
  "llama-tiny-q5_1:--arch llama --preset tiny --type Q5_1"
  "llama-small-q6_k:--arch llama --preset small --type Q6_K"
  "qwen2-small-q3_k:--arch qwen2 --preset small --type Q3_K"
)
for entry in "${bisect_models[@]}"; do
  name=${entry%%:*}
  read -r -a gen_args <<<"${entry#*:}"
  file="$MODELS/$name.gguf"
  if step "gen-$name" gen_model "$file" "${gen_args[@]}"; then
    step "bisect-$name" run_apr bisect "$file" --backend-a cpu --backend-b cuda
  fi
done

bench_model="$MODELS/qwen2.5-0.5b-q4_k_m.gguf"
if step gen-bench-model gen_model "$bench_model" --arch qwen2 --preset qwen2.5-0.5b --type Q4_K_M; then
  step bench-cuda run_apr --backend=cuda bench "$bench_model" --json
  step bench-cpu run_apr --backend=cpu bench "$bench_model" --json --repetitions 2
fi

echo "----"
echo "$failures step(s) failed; summary in $SUMMARY"
[ "$failures" -eq 0 ]
