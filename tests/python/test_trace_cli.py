# SPDX-License-Identifier: MIT
"""`apr trace --save-tensor all` against the reference's trace of the same prompt: the same APRT
files (DIR/layer-N/<stage>.bin, DIR/<stage>.bin) with the same element counts and values within
1e-4 · max(1, max|stage|). Skipped until apr and its trace verb exist."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import ref_forward as ref
from test_model_logits import apr  # noqa: F401  (the fixture: skips without apr or a device)

TOKENS = [1, 17, 250, 99, 4, 33]
TOL = 1e-4


def stage_files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*.bin")}


@pytest.mark.parametrize("arch,file_type", [("qwen2", "F32"), ("llama", "F32"), ("qwen2", "Q8_0"),
                                            ("llama", "Q4_K_M")])  # fmt: skip
def test_trace_matches_reference(apr, models, tmp_path, arch, file_type):  # noqa: F811
    model = models.get(arch, "tiny", file_type)
    apr_dir = tmp_path / "apr"
    cmd = [str(apr), "--backend=" + os.environ.get("APR_TEST_BACKEND", "cpu"), "trace", str(model),
           "--tokens", ",".join(map(str, TOKENS)), "--save-tensor", "all",
           "--save-tensor-layers", "0..2", "--save-tensor-dir", str(apr_dir)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if "not available in this build" in proc.stderr:
        pytest.skip("apr CLI not built with the trace verb")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert apr_dir.is_dir(), f"no trace directory {apr_dir}: {proc.stdout[-1000:]}"

    ref_dir = tmp_path / "reference"
    ref.write_trace(ref.forward(model, TOKENS, trace=True)["stages"], ref_dir)
    expected, got = stage_files(ref_dir), stage_files(apr_dir)
    assert sorted(got) == sorted(expected)
    assert len(expected) >= 2 * 16 + 3  # every stage of both layers, embedding, final, head
    for name, path in sorted(expected.items()):
        ref_layer, want = ref.read_aprt(path)
        layer, have = ref.read_aprt(got[name])
        assert layer == ref_layer, name
        assert have.size == want.size, f"{name}: {have.size} values, expected {want.size}"
        tol = TOL * max(1.0, float(np.abs(want).max()))
        diff = float(np.abs(have.astype(np.float64) - want).max())
        assert diff <= tol, f"{name}: max |Δ| {diff:.3g} > {tol:.3g}"
