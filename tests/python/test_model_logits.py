# SPDX-License-Identifier: MIT
"""End-to-end: apr's logits and greedy ids against the float64 reference, with teacher forcing.

apr is found through $APR_BIN (else build/bin/apr); the backend through $APR_TEST_BACKEND (default
cpu), so the Vulkan and CUDA backends reuse this file. The reference dequantizes the very weights
apr reads, so every type is held to the F32 tolerance class: max|Δ| ≤ TOL · max(1, max|logit|).
$APR_TEST_TOL_SCALE multiplies TOL for backends that compute in lower precision.

Measured on the CPU backend over every case below, the worst max|Δ| / max(1, max|logit|): with
every product in f32 (APR_CPU_ACT=f32) 3.4e-7, so TOL = 1e-4 leaves a margin of about 300; with
the cpu plugin's default on CPUs with AVX-512 VNNI (activations quantized to 16 bits) 8.4e-5,
which CTest checks at 3 x TOL; with 8-bit activations (APR_CPU_ACT=q8) 1.7e-2, checked at
300 x TOL. The Vulkan backend on lavapipe (APR_TEST_BACKEND=vulkan) measured 4.0e-7.
A backend other than cpu that `apr plugins` lists without a device is skipped, not failed.
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import ref_forward as ref
from apr_fixtures import apr_binary

TOL = 1e-4
PROMPT = [1, 17, 250, 99, 4]
MAX_TOKENS = 8

TINY_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_0", "Q4_K", "Q6_K", "Q4_K_M", "Q2_K",
              "Q3_K", "Q5_K", "Q4_1", "Q5_1"]  # fmt: skip
# Tiny rows (64, 128 wide) are not multiples of 256, so its K-type files hold the fallback types
# only; the small preset (256 wide) is where K-quant blocks really reach the engine.
CASES = (
    [(arch, "tiny", t, {}) for arch in ("qwen2", "llama") for t in TINY_TYPES]
    + [(arch, "small", "F32", {}) for arch in ("qwen2", "llama")]
    + [("llama", "small", t, {}) for t in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M")]
    + [("qwen2", "small", t, {}) for t in ("Q4_K", "Q6_K")]
    + [("qwen2", "tiny", t, {"tied": True}) for t in ("F32", "Q8_0")]
    + [("llama", "tiny", t, {"rope_freqs": True}) for t in ("F32", "Q8_0")]
)
# The full Qwen2.5-0.5B shape (tied, GQA 14/2, rows of 896 with Q8_0/Q5_0 fallbacks) takes about
# a minute and 4 GB in the reference, so it runs only with APR_TEST_LARGE=1. Measured on the CPU
# backend: 4.7e-7 (Q4_K_M) and 4.0e-7 (F16) relative.
LARGE_CASES = [("qwen2", "qwen2.5-0.5b", t, {}) for t in ("Q4_K_M", "F16")]
if os.environ.get("APR_TEST_LARGE") == "1":
    CASES = CASES + LARGE_CASES


def backend_has_device(apr: Path, backend: str) -> bool:
    """Whether `apr plugins --json` lists a device under the plugin named (or aliased) backend."""
    proc = subprocess.run([str(apr), "plugins", "--json"], capture_output=True, text=True,
                          timeout=120)
    # A broken apr is a failure, never a missing device (which would skip).
    assert proc.returncode == 0, f"apr plugins --json exited {proc.returncode}: {proc.stderr[-2000:]}"
    for plugin in json.loads(proc.stdout)["plugins"]:
        if backend == plugin["name"] or backend in plugin.get("aliases", []):
            return bool(plugin["devices"])
    return False


@pytest.fixture(scope="module")
def apr():
    path = apr_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"apr CLI not built: {path} does not exist (set APR_BIN)")
    backend = os.environ.get("APR_TEST_BACKEND", "cpu")
    if backend != "cpu" and not backend_has_device(path, backend):
        pytest.skip(f"backend {backend}: no usable device in 'apr plugins'")
    return path


def run_apr(apr: Path, model: Path, dump: Path, backend: str) -> dict:
    cmd = [str(apr), f"--backend={backend}", "run", str(model), "--tokens",
           ",".join(map(str, PROMPT)), "--max-tokens", str(MAX_TOKENS), "--temperature", "0",
           "--json", "--dump-logits", str(dump)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}"
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"apr --json printed no single JSON object: {proc.stdout[-2000:]!r}")


def case_id(case):
    arch, preset, file_type, extra = case
    return "-".join([arch, preset, file_type] + [k for k, v in extra.items() if v])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_logits_match_reference(apr, models, tmp_path, case):
    arch, preset, file_type, extra = case
    backend = os.environ.get("APR_TEST_BACKEND", "cpu")
    scale = float(os.environ.get("APR_TEST_TOL_SCALE", "1"))
    model_path = models.get(arch, preset, file_type, **extra)
    dump = tmp_path / "logits.npy"

    out = run_apr(apr, model_path, dump, backend)
    for key in ("model", "backend", "prompt_token_ids", "generated_token_ids", "text", "timings"):
        assert key in out, f"JSON output lacks {key!r}"
    assert out["prompt_token_ids"] == PROMPT
    generated = [int(t) for t in out["generated_token_ids"]]
    assert 1 <= len(generated) <= MAX_TOKENS

    got = np.load(dump)
    model = ref.Model(model_path)
    assert got.dtype == np.float32 and got.shape == (len(generated), model.vocab)

    # Teacher forcing: row i of apr's dump was computed after PROMPT + generated[:i].
    logits = ref.forward(model, PROMPT + generated[:-1])["logits"]
    expected = logits[len(PROMPT) - 1 :]
    tol = TOL * scale * max(1.0, float(np.abs(expected).max()))
    diff = np.abs(got.astype(np.float64) - expected)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() <= tol, (
        f"max |Δlogit| {diff.max():.3g} > {tol:.3g} at step {worst[0]}, token {worst[1]} "
        f"(apr {got[worst]:.6g}, reference {expected[worst]:.6g})"
    )

    top2 = np.sort(expected, axis=1)[:, -2:]
    for i, token in enumerate(generated):
        if top2[i, 1] - top2[i, 0] > tol:
            assert token == int(expected[i].argmax()), f"step {i}: apr chose {token}"
