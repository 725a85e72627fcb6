#!/bin/sh
# SPDX-License-Identifier: MIT
# The plugin SDK from an installed prefix alone: `cmake --install` this build into a temporary
# prefix, build the installed example plugin out of tree with CMake (find_package(AprPlugin)) and
# with a plain compiler and `pkg-config apr-plugin`, then check both with the installed
# `apr plugin-check`. Also compiles a C++ translation unit against plugin_sdk.hpp.
#   out_of_tree_plugin.sh BUILD_DIR CMAKE CC CXX GENERATOR MAKE_PROGRAM
# The out-of-tree build uses this build's generator and compiler: a machine set up by
# tools/install-deps.sh has Ninja but not necessarily make, CMake's default.
set -eu
build=$1 cmake=$2 cc=$3 cxx=$4 generator=$5 make_program=$6
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log"
pc=$(find "$prefix" -name apr-plugin.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: no apr-plugin.pc installed"; exit 1; }
src="$prefix/share/apr/example-plugin"
apr="$prefix/bin/apr"
export APR_PLUGIN_PATH=  # only what the prefix holds
export XDG_CACHE_HOME="$work/cache"

echo "== CMake: find_package(AprPlugin CONFIG) from $prefix"
"$cmake" -S "$src" -B "$work/cmake-build" -G "$generator" -DCMAKE_MAKE_PROGRAM="$make_program" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  >"$work/configure.log"
"$cmake" --build "$work/cmake-build" >"$work/build.log"
"$apr" plugin-check "$work/cmake-build/apr-plugin-example.so"

echo "== cc \$(pkg-config --cflags --libs apr-plugin)"
export PKG_CONFIG_PATH="$(dirname "$pc")"
# shellcheck disable=SC2046
"$cc" -std=c99 -O2 -fPIC -shared $(pkg-config --cflags apr-plugin) "$src/example_plugin.c" \
  -o "$work/apr-plugin-example-cc.so" $(pkg-config --libs apr-plugin) -lm
exports=$(nm -D --defined-only "$work/apr-plugin-example-cc.so" | awk '{print $3}')
[ "$exports" = "apr_plugin_entry" ] || { echo "FAIL: exports $exports"; exit 1; }
"$apr" plugin-check "$work/apr-plugin-example-cc.so"

echo "== C++ against plugin_sdk.hpp"
printf '#include <apr/plugin_sdk.hpp>\nint main() { return apr_sdk::guarded("x", [] {}); }\n' \
  >"$work/sdk.cpp"
# shellcheck disable=SC2046
"$cxx" -std=c++17 $(pkg-config --cflags apr-plugin) "$work/sdk.cpp" -o "$work/sdk"
"$work/sdk"
echo "ok: the installed SDK builds and checks a plugin"
