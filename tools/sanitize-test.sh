#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The sanitizer pass: builds apr, libaprcore, the cpu and Vulkan plugins and the tests with
# AddressSanitizer + UndefinedBehaviorSanitizer (every UB report is fatal) into build-asan/ and
# runs the suite there, Vulkan on lavapipe included. CUDA stays off (no GPU in CI).
#
# The runtime options live in tests/sanitizers/: asan.options, ubsan.options, and lsan.supp,
# which names the only leak tolerated (Mesa's lavapipe driver, one block per VkInstance).
#
#   tools/sanitize-test.sh              build, then run the whole suite
#   tools/sanitize-test.sh -R kernels   extra arguments go to ctest
# Environment: APR_ASAN_BUILD_DIR (default build-asan), APR_JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${APR_ASAN_BUILD_DIR:-build-asan}
jobs=${APR_JOBS:-$(nproc)}

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
start=$SECONDS
if [ ! -f "$build/build.ninja" ]; then
  # -O1 -g1: ASan's recommended optimisation, and line tables enough for symbolised reports;
  # about half the compile time of -O2 -g (the cpu plugin's kernels keep their own -O3).
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPR_BUILD_CUDA=OFF \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    -DPython3_EXECUTABLE="$root/.venv/bin/python" "${launcher[@]}" \
    -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" \
    -DCMAKE_SHARED_LINKER_FLAGS="$san" -DCMAKE_MODULE_LINKER_FLAGS="$san"
fi
cmake --build "$build" -j"$jobs"
echo "apr: sanitizer build took $((SECONDS - start)) s"

# Child processes (apr run by the pytest suites, plugin probes) inherit these.
export ASAN_OPTIONS="include=$root/tests/sanitizers/asan.options"
export UBSAN_OPTIONS="include=$root/tests/sanitizers/ubsan.options"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
# lavapipe leaks a block per VkInstance and is unloaded before the leak report, which would then
# name no library. Preloaded, it stays mapped and tests/sanitizers/lsan.supp can name it; ASan
# must then accept not being the first library (its runtime still precedes libc).
lvp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ICD"]["library_path"])' \
  /usr/share/vulkan/icd.d/lvp_icd.x86_64.json 2>/dev/null || true)
if [ -n "$lvp" ] && [ -f "$lvp" ]; then
  export LD_PRELOAD="$lvp${LD_PRELOAD:+:$LD_PRELOAD}"
  ASAN_OPTIONS+=":verify_asan_link_order=0"
fi
start=$SECONDS
status=0
ctest --test-dir "$build" --output-on-failure -j"$jobs" "$@" || status=$?
echo "apr: sanitizer test run took $((SECONDS - start)) s"
exit $status
