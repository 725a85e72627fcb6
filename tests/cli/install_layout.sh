#!/bin/sh
# SPDX-License-Identifier: MIT
# cmake --install lays out bin/apr, lib*/apr/plugins/*.so and include/apr/plugin.h, and the
# installed apr finds its plugins with no flag or variable.
set -eu
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" --component runtime >/dev/null
cmake --install "$build" --prefix "$prefix" --component plugin-cpu >/dev/null
cmake --install "$build" --prefix "$prefix" --component dev >/dev/null
test -x "$prefix/bin/apr"
test -f "$prefix/include/apr/plugin.h"
ls "$prefix"/lib*/apr/plugins/apr-plugin-cpu.so >/dev/null
unset APR_PLUGIN_PATH
out=$(env -u APR_PLUGIN_PATH "$prefix/bin/apr" plugins)
echo "$out" | grep -q "^  cpu .*$prefix/lib.*/apr/plugins/apr-plugin-cpu.so" || {
  echo "installed apr did not load its cpu plugin:"; echo "$out"; exit 1; }
# Test-only plugins are never installed.
if ls "$prefix"/lib*/apr/plugins/ | grep -qE "example|fault"; then
  echo "test-only plugin installed"; exit 1
fi
echo "install layout OK"
