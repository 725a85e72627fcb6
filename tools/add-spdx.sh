#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Puts an SPDX licence line at the top of every source file of the project, in the comment
# style of its language, or (--check) lists the files that lack one and exits 1.
#
#   tools/add-spdx.sh [--check] [DIR]     DIR defaults to the repository root
#
# Source files are the tracked files (git ls-files; a plain find outside a git tree) ending in
# .c .h .map (/* */), .cpp .hpp .cc .cu .cuh .comp .glsl (//), .py .sh .cmake .cmake.in .pc.in,
# CMakeLists.txt, debian/rules and .ci/run (#). The line goes first, or right after a shebang
# and a Python coding line, which must stay on lines 1-2. A file that already names an SPDX
# licence in its first five lines is left alone, so running the script twice changes nothing.
set -euo pipefail

license=MIT
check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
root=${1:-"$(dirname "$0")/.."}
cd "$root"

list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files
  else
    find . -path ./.git -prune -o -path './build*' -prune -o -path ./.venv -prune \
      -o -path ./debian/.debhelper -prune -o -path './obj-*' -prune -o -type f -print |
      sed 's|^\./||'
  fi
}

# Prints the comment for FILE, or nothing when FILE is not a source file.
comment_for() {
  case "$1" in
    *.c | *.h | *.map) echo "/* SPDX-License-Identifier: $license */" ;;
    *.cpp | *.hpp | *.cc | *.cu | *.cuh | *.comp | *.glsl) echo "// SPDX-License-Identifier: $license" ;;
    *.py | *.sh | *.cmake | *.cmake.in | *.pc.in | */CMakeLists.txt | CMakeLists.txt | debian/rules | .ci/run)
      echo "# SPDX-License-Identifier: $license"
      ;;
  esac
}

has_header() { head -n 5 "$1" | grep -q 'SPDX-License-Identifier:'; }

# Number of leading lines that must stay first: a shebang, then a Python coding declaration.
keep_first() {
  local n=0
  if head -n 1 "$1" | grep -q '^#!'; then n=1; fi
  if sed -n "$((n + 1))p" "$1" | grep -Eq '^[ \t\f]*#.*coding[:=][ \t]*[-_.a-zA-Z0-9]+'; then
    n=$((n + 1))
  fi
  echo "$n"
}

missing=0
changed=0
while IFS= read -r f; do
  [ -f "$f" ] || continue
  c=$(comment_for "$f")
  [ -n "$c" ] || continue
  has_header "$f" && continue
  if ((check)); then
    echo "missing SPDX-License-Identifier: $f"
    missing=$((missing + 1))
    continue
  fi
  n=$(keep_first "$f")
  tmp=$(mktemp "$f.spdx.XXXXXX")
  { head -n "$n" "$f"; echo "$c"; tail -n "+$((n + 1))" "$f"; } >"$tmp"
  chmod --reference="$f" "$tmp"
  mv "$tmp" "$f"
  changed=$((changed + 1))
done < <(list_files)

if ((check)); then
  if ((missing)); then
    echo "$missing source file(s) lack an SPDX licence line; run tools/add-spdx.sh" >&2
    exit 1
  fi
  echo "every source file names its licence (SPDX)"
else
  echo "added an SPDX licence line to $changed file(s)"
fi
