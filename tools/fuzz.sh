#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer harnesses of tests/fuzz with clang (ASan + UBSan, every UB report fatal)
# into build-fuzz/ and runs each for a bounded time. Seeds: tests/fuzz/corpus/<target>/ (checked
# in), tests/fuzz/regressions/<target>/, and GGUF models written by tools/gen_model.py. A crash,
# leak, hang (> 10 s for one input) or escaping exception fails the run and the input is copied
# into tests/fuzz/regressions/<target>/, where CTest replays it from then on: commit it with the
# fix.
#
#   tools/fuzz.sh                  every target, APR_FUZZ_SECONDS (default 60) each
#   tools/fuzz.sh gguf cli         only these targets (gguf aprt trace_dir cli)
# Environment: APR_FUZZ_SECONDS, APR_FUZZ_BUILD_DIR (default build-fuzz), APR_JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# Absolute paths throughout: a harness may change directory while an input runs, and libFuzzer
# writes a finding (and reads seeds) by the paths it was given, at that moment.
build=$(realpath -m "${APR_FUZZ_BUILD_DIR:-build-fuzz}")
seconds=${APR_FUZZ_SECONDS:-60}
jobs=${APR_JOBS:-$(nproc)}
targets=("$@")
((${#targets[@]})) || targets=(gguf aprt trace_dir cli)

cc=clang-14
cxx=clang++-14
command -v "$cxx" >/dev/null || { echo "apr: $cxx not found (tools/install-deps.sh)" >&2; exit 2; }
san="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined"
san+=" -fno-omit-frame-pointer"
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
start=$SECONDS
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPR_FUZZ=ON \
    -DAPR_BUILD_CUDA=OFF -DAPR_BUILD_VULKAN=OFF -DPython3_EXECUTABLE="$root/.venv/bin/python" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" \
    -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" \
    -DCMAKE_SHARED_LINKER_FLAGS="$san" -DCMAKE_MODULE_LINKER_FLAGS="$san"
fi
cmake --build "$build" -j"$jobs" --target "${targets[@]/#/fuzz_}"
echo "apr: fuzz build took $((SECONDS - start)) s"

export ASAN_OPTIONS="include=$root/tests/sanitizers/asan.options"
export UBSAN_OPTIONS="include=$root/tests/sanitizers/ubsan.options"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
work="$build/fuzz-work"
mkdir -p "$work"

# Generated seeds: small models of both architectures and tokenizer kinds, float and quantized.
seed_models() {
  local dir="$work/seeds/gguf"
  [ -f "$dir/.done" ] && return
  mkdir -p "$dir"
  local shape=(--hidden 32 --layers 1 --heads 2 --kv-heads 1 --ffn 32 --vocab 300 --ctx 64)
  for spec in "qwen2 gpt2 Q8_0" "qwen2 gpt2 F32" "llama llama Q4_K" "llama gpt2 F16"; do
    set -- $spec
    .venv/bin/python tools/gen_model.py --arch "$1" --tokenizer "$2" --type "$3" "${shape[@]}" \
      --out "$dir/$1-$2-$3.gguf" >"$work/gen_model.log" 2>&1 || { cat "$work/gen_model.log"; exit 2; }
  done
  touch "$dir/.done"
}

# Option names of every verb, as a libFuzzer dictionary for the command-line target.
cli_dictionary() {
  grep -ohE '\("[a-z][a-z0-9-]+(,[a-z])?"' apps/apr/*.cpp | sed -E 's/^\("//; s/(,[a-z])?"$//' |
    sort -u | sed 's/.*/"--&"/'
  printf '"%s"\n' run info plugins trace diff bisect bench help --help --version -1 0 4294967296 \
    nan inf 1e309
}

status=0
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  seeds=()
  for d in "$root/tests/fuzz/corpus/$t" "$root/tests/fuzz/regressions/$t"; do
    [ -d "$d" ] && seeds+=("$d")
  done
  extra=()
  if [ "$t" = gguf ]; then
    seed_models
    seeds+=("$work/seeds/gguf")
  fi
  if [ "$t" = cli ]; then
    cli_dictionary >"$work/cli.dict"
    extra+=(-dict="$work/cli.dict")
  fi
  echo "apr: fuzzing $t for $seconds s"
  start=$SECONDS
  rc=0
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$artifacts" "${extra[@]}" \
    "$corpus" "${seeds[@]}" >"$work/$t.log" 2>&1 || rc=$?
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/$t.log" | tr '\n' ' ' || true
  echo "($((SECONDS - start)) s, corpus $(find "$corpus" -type f | wc -l) files)"
  if ((rc != 0)); then
    status=1
    tail -n 60 "$work/$t.log"
    mkdir -p "tests/fuzz/regressions/$t"
    for f in "$artifacts"*; do
      [ -f "$f" ] || continue
      cp "$f" "tests/fuzz/regressions/$t/"
      echo "apr: fuzz $t: finding saved as tests/fuzz/regressions/$t/$(basename "$f")" >&2
    done
  fi
done
exit $status
