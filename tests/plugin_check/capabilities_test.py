# SPDX-License-Identifier: MIT
"""The host uses the capability query (ABI 1.2): a model whose weight types the chosen backend
does not claim is refused before loading, with the type and tensor named, and --backend=auto
passes over such a backend for the next best one.
usage: capabilities_test.py APR GEN_MODEL EXAMPLE_DIR EXAMPLE_FAST_DIR"""
import json
import os
import subprocess
import sys
import tempfile

apr, gen_model, example_dir, fast_dir = sys.argv[1:5]

with tempfile.TemporaryDirectory() as tmp:
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"), APR_PLUGIN_PATH="")
    models = {}
    for t in ("Q8_0", "F16"):
        models[t] = os.path.join(tmp, f"tiny-{t}.gguf")
        subprocess.run([sys.executable, gen_model, "--arch", "llama", "--preset", "tiny",
                        "--type", t, "--out", models[t]], check=True)

    def run(model, *extra):
        return subprocess.run([apr, "run", model, "--tokens", "1,2,3", "--max-tokens", "2",
                               "--json", *extra], capture_output=True, text=True, env=env)

    refused = run(models["Q8_0"], "--backend", "example", "--plugin-dir", example_dir)
    assert refused.returncode == 2, (refused.returncode, refused.stdout, refused.stderr)
    assert "cannot load weight type Q8_0" in refused.stderr, refused.stderr
    assert "supports F32, F16" in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr  # one line

    picked = run(models["F16"], "--plugin-dir", fast_dir)
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout)["backend"] == "example-fast", picked.stdout

    passed_over = run(models["Q8_0"], "--plugin-dir", fast_dir)
    assert passed_over.returncode == 0, passed_over.stderr
    assert json.loads(passed_over.stdout)["backend"] == "cpu", passed_over.stdout

    # Every verb that loads a model chooses the same way, not only run.
    trace_dir = os.path.join(tmp, "trace")
    traced = subprocess.run([apr, "--plugin-dir", fast_dir, "trace", models["Q8_0"], "--tokens",
                             "1,2,3", "--save-tensor", "lm_head", "--save-tensor-dir", trace_dir,
                             "--json"],
                            capture_output=True, text=True, env=env)
    assert traced.returncode == 0, traced.stderr
    assert json.loads(traced.stdout)["backend"] == "cpu", traced.stdout
    bench = subprocess.run([apr, "--plugin-dir", fast_dir, "bench", models["Q8_0"], "-p", "4",
                            "-n", "2", "-r", "1", "--json"], capture_output=True, text=True,
                           env=env)
    assert bench.returncode == 0, bench.stderr
    assert "example" not in bench.stdout, bench.stdout
    print("ok: refused early, chosen, and passed over by auto (run, trace, bench)")
