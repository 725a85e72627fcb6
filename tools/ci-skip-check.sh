#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Proves that CTest reports a failing pytest-driven test as failed and a genuine skip as skipped:
# every CTest entry that runs pytest (it loads tests/ctest/ctest_skip.py) is run twice through
# ctest itself,
#   APR_TEST_PLANT_FAILURE=1  every test body fails, with skip reasons in the message -> Failed
#   APR_TEST_PLANT_SKIP=1     every test skips, as when a precondition is missing   -> Skipped
# and anything else is an error. Run after the suite was built (tools/test.sh), by .ci/run.
#
#   tools/ci-skip-check.sh [BUILD_DIR [CTEST_REGEX]]   defaults: build, every pytest entry
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
regex=${2:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The entries whose command loads the plugin, from CTest's own description of the suite.
ctest --test-dir "$build" --show-only=json-v1 >"$work/tests.json"
mapfile -t names < <(python3 - "$work/tests.json" "$regex" <<'EOF'
import json, re, sys
tests = json.load(open(sys.argv[1]))["tests"]
pattern = re.compile(sys.argv[2]) if sys.argv[2] else None
for t in tests:
    cmd = t.get("command", [])
    if "ctest_skip" in cmd and (pattern is None or pattern.search(t["name"])):
        print(t["name"])
EOF
)
if ((${#names[@]} == 0)); then
  echo "ci-skip-check: no pytest-driven CTest entry in $build matches '${regex}'" >&2
  exit 2
fi
select="^($(printf '%s|' "${names[@]}" | sed 's/[.]/\\./g; s/|$//'))\$"

# run_planted VAR WANT: runs the entries with VAR=1 and checks every one ended as WANT.
run_planted() {
  local var=$1 want=$2 junit="$work/$1.xml"
  env "$var=1" ctest --test-dir "$build" -R "$select" -j"$(nproc)" --output-junit "$junit" \
    >"$work/$var.log" 2>&1 || true
  python3 - "$junit" "$want" "$var" "${names[@]}" <<'EOF'
import sys
import xml.etree.ElementTree as ET
junit, want, var, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
status = {}
for case in ET.parse(junit).getroot().iter("testcase"):
    state = case.get("status")
    skipped = case.find("skipped")
    # A skip must come from the exit status, not from a missing executable or the like.
    if state == "notrun" and (skipped is None or "SKIP_RETURN_CODE" not in skipped.get("message", "")):
        state = "notrun (not by SKIP_RETURN_CODE)"
    status[case.get("name")] = state
bad = [f"{n}: {status.get(n, 'not run')}" for n in names if status.get(n) != want]
if bad:
    print(f"ci-skip-check: with {var}=1 these were not '{want}':", *bad, sep="\n  ")
    sys.exit(1)
print(f"ci-skip-check: with {var}=1 all {len(names)} pytest entries ended '{want}'")
EOF
}
status=0
run_planted APR_TEST_PLANT_FAILURE fail || status=1
run_planted APR_TEST_PLANT_SKIP notrun || status=1
if ((status)); then
  echo "ci-skip-check: logs follow" >&2
  cat "$work"/*.log >&2
fi
exit $status
