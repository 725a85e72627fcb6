# SPDX-License-Identifier: MIT
"""apr plugin-check --json prints one JSON document: every check with its result, and a summary
that agrees with them; exit 0 for a plugin that passes."""
import json
import subprocess
import sys

apr, plugin = sys.argv[1], sys.argv[2]
run = subprocess.run([apr, "plugin-check", plugin, "--json"], capture_output=True, text=True)
assert run.returncode == 0, (run.returncode, run.stdout, run.stderr)
doc = json.loads(run.stdout)
results = [c["result"] for c in doc["checks"]]
assert len(results) >= 20, results
assert set(results) <= {"pass", "skip"}, results
assert doc["summary"]["passed"] == results.count("pass"), doc["summary"]
assert doc["summary"]["failed"] == 0
assert doc["checks"][0]["name"].startswith("loads like the host"), doc["checks"][0]
print("ok:", doc["summary"])
