#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tools/add-spdx.sh on a scratch tree: --check fails while a header is missing, the script adds
# one comment per language in the right place (after a shebang and a Python coding line), and a
# second run changes nothing.
set -euo pipefail
tool=$(cd "$(dirname "$0")/../.." && pwd)/tools/add-spdx.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$dir/src" "$dir/.ci"
printf 'int main(void) { return 0; }\n' >"$dir/src/a.c"
printf '#pragma once\n' >"$dir/src/b.hpp"
printf '#version 450\nvoid main() {}\n' >"$dir/src/k.comp"
printf '#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(1)\n' >"$dir/src/t.py"
printf '#!/bin/sh\necho hi\n' >"$dir/src/s.sh"
printf 'project(x)\n' >"$dir/CMakeLists.txt"
printf '#!/usr/bin/env bash\ntrue\n' >"$dir/.ci/run"
printf 'not source\n' >"$dir/README.md"
chmod +x "$dir/src/s.sh" "$dir/.ci/run"

if "$tool" --check "$dir" >"$dir.out" 2>&1; then fail "--check passed on files without headers"; fi
[ "$(grep -c '^missing' "$dir.out")" -eq 7 ] || { cat "$dir.out"; fail "expected 7 missing files"; }
rm -f "$dir.out"

"$tool" "$dir" >/dev/null
"$tool" --check "$dir" >/dev/null || fail "--check fails after adding headers"

[ "$(sed -n 1p "$dir/src/a.c")" = "/* SPDX-License-Identifier: MIT */" ] || fail "C header"
[ "$(sed -n 1p "$dir/src/b.hpp")" = "// SPDX-License-Identifier: MIT" ] || fail "C++ header"
[ "$(sed -n 1p "$dir/src/k.comp")" = "// SPDX-License-Identifier: MIT" ] || fail "GLSL header"
[ "$(sed -n 2p "$dir/src/k.comp")" = "#version 450" ] || fail "GLSL body moved"
[ "$(sed -n 1p "$dir/src/t.py")" = "#!/usr/bin/env python3" ] || fail "Python shebang not first"
[ "$(sed -n 2p "$dir/src/t.py")" = "# -*- coding: utf-8 -*-" ] || fail "Python coding line moved"
[ "$(sed -n 3p "$dir/src/t.py")" = "# SPDX-License-Identifier: MIT" ] || fail "Python header"
[ "$(sed -n 1p "$dir/src/s.sh")" = "#!/bin/sh" ] || fail "shell shebang not first"
[ "$(sed -n 2p "$dir/src/s.sh")" = "# SPDX-License-Identifier: MIT" ] || fail "shell header"
[ -x "$dir/src/s.sh" ] || fail "executable bit lost"
[ "$(sed -n 1p "$dir/CMakeLists.txt")" = "# SPDX-License-Identifier: MIT" ] || fail "CMake header"
[ "$(sed -n 2p "$dir/.ci/run")" = "# SPDX-License-Identifier: MIT" ] || fail ".ci/run header"
[ "$(cat "$dir/README.md")" = "not source" ] || fail "non-source file changed"

before=$(cd "$dir" && find . -type f -exec md5sum {} + | sort)
"$tool" "$dir" >/dev/null
after=$(cd "$dir" && find . -type f -exec md5sum {} + | sort)
[ "$before" = "$after" ] || fail "second run changed files"
echo "add-spdx: all checks passed"
