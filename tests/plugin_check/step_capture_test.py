# SPDX-License-Identifier: MIT
"""The host's side of step capture (ABI 1.2): `apr run` brackets every forward batch with
step_begin/step_end and the scalars buffer, so a plugin that replays recorded steps
(example-replay) generates exactly what the eager example plugin generates, and does replay.
usage: step_capture_test.py APR GEN_MODEL TEST_PLUGIN_DIR"""
import json
import os
import subprocess
import sys
import tempfile

apr, gen_model, plugin_dir = sys.argv[1:4]
MAX_TOKENS = 12

with tempfile.TemporaryDirectory() as tmp:
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"), APR_PLUGIN_PATH="",
               APR_REPLAY_REPORT="1")
    model = os.path.join(tmp, "tiny-f16.gguf")
    subprocess.run([sys.executable, gen_model, "--arch", "qwen2", "--preset", "tiny", "--type",
                    "F16", "--out", model], check=True)
    out = {}
    for backend in ("example", "example-replay"):
        run = subprocess.run([apr, "run", model, "--tokens", "5,9,2,7", "--max-tokens",
                              str(MAX_TOKENS), "--ignore-eos", "--temperature", "0", "--json",
                              "--backend", backend, "--plugin-dir", plugin_dir],
                             capture_output=True, text=True, env=env)
        assert run.returncode == 0, (backend, run.stderr)
        out[backend] = (json.loads(run.stdout)["generated_token_ids"], run.stderr)
    eager, replayed = out["example"][0], out["example-replay"][0]
    assert len(eager) == MAX_TOKENS, eager
    assert replayed == eager, (replayed, eager)
    report = [l for l in out["example-replay"][1].splitlines() if l.startswith("replayed steps:")]
    assert report, out["example-replay"][1]
    # The prompt and the first decode step are recorded; the other decode steps are replays.
    assert int(report[0].split(":")[1]) >= MAX_TOKENS - 2, report
    print("ok:", report[0], "- tokens identical to eager:", eager)
