# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Sourced (not run) by tools/bench-vs-llama.sh and tools/perplexity-vs-llama.sh: where llama.cpp's
# source comes from and the CMake flags of its build, so that both scripts build the same way and
# can share one build tree (CACHE/build-cpu).
#
# The caller sets CACHE (the cache folder), PY (a Python with pip) and LLAMA_CPP_PYTHON_VERSION,
# and defines die() and note().

# The llama.cpp source that the PyPI sdist of llama-cpp-python carries (its vendor/llama.cpp),
# downloaded and unpacked into CACHE/src once. Prints its path.
llama_source() {
  local src
  src="$(ls -d "$CACHE"/src/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"/vendor/llama.cpp 2>/dev/null | head -1 || true)"
  if [ -z "$src" ]; then
    note "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist from PyPI"
    mkdir -p "$CACHE/src"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$CACHE/src" >&2
    tar -xzf "$CACHE/src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$CACHE/src"
    src="$CACHE/src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  fi
  [ -f "$src/CMakeLists.txt" ] || die "no llama.cpp source at $src"
  echo "$src"
}

# The flags every build shares, one per line: static executables (a pack holds self-contained
# binaries), no tests, examples, server or network, ccache where installed.
llama_common_flags() {
  printf '%s\n' -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
  if command -v ccache > /dev/null; then
    printf '%s\n' -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
      -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache
  fi
}

# The CPU backend's flags, one per line: the instruction sets /proc/cpuinfo lists, named one by one
# instead of -march=native (GGML_NATIVE): that would also enable AMX, whose tile instructions fault
# (SIGILL) on virtual machines that advertise AMX without enabling it, as on the machine the
# benchmark numbers come from.
llama_cpu_flags() {
  printf '%s\n' -DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  local cpuflags pair
  cpuflags=" $(grep -m1 '^flags' /proc/cpuinfo 2> /dev/null | cut -d: -f2) "
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx512f:AVX512 \
    avx512_vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16 avx_vnni:AVX_VNNI; do
    if [[ "$cpuflags" == *" ${pair%%:*} "* ]]; then
      echo "-DGGML_${pair#*:}=ON"
    else
      echo "-DGGML_${pair#*:}=OFF"
    fi
  done
}

# The CPU build's tool NAME (llama-tokenize, llama-completion, llama-perplexity, ...) in
# CACHE/build-cpu, built there first when missing (same tree and flags as bench-vs-llama --cpu,
# log in CACHE/build-NAME.log). Prints its path.
llama_cpu_tool() {
  local name="$1" build="$CACHE/build-cpu" src
  local -a flags cpu
  if [ -x "$build/bin/$name" ]; then
    note "using $build/bin/$name"
  else
    src="$(llama_source)"
    mapfile -t flags < <(llama_common_flags)
    mapfile -t cpu < <(llama_cpu_flags)
    note "building $name in $build (once; several minutes on 2 cores)"
    cmake -S "$src" -B "$build" "${flags[@]}" "${cpu[@]}" > "$CACHE/configure-cpu.log" 2>&1 ||
      die "configure failed, see $CACHE/configure-cpu.log"
    cmake --build "$build" -j "${BUILD_JOBS:-2}" --target "$name" > "$CACHE/build-$name.log" 2>&1 ||
      die "build failed, see $CACHE/build-$name.log"
  fi
  echo "$build/bin/$name"
}
