# SPDX-License-Identifier: MIT
"""`apr bisect`: names the injected fault's layer and stage, is clean against the float64
reference, writes a self-contained HTML report, and exits 0/1/2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TOKENS = "1,17,250,99,4,33"

# (arch, APR_CPU_FAULT, expected layer, expected stage): early, internal (softmax, silu, scores)
# and whole-model places.
FAULTS = [
    ("qwen2", "0:attn_softmax", 0, "attn_softmax"),
    ("qwen2", "1:attn_scores", 1, "attn_scores"),
    ("qwen2", "0:qkv_bias", 0, "qkv_bias"),
    ("qwen2", "1:ffn_silu", 1, "ffn_silu"),
    ("qwen2", "none:final_norm", None, "final_norm"),
    ("qwen2", "none:lm_head", None, "lm_head"),
    ("llama", "0:embedding", 0, "embedding"),
    ("llama", "1:k_post_rope", 1, "k_post_rope"),
    ("llama", "1:post_ffn_residual", 1, "post_ffn_residual"),
    ("llama", "none:final_norm", None, "final_norm"),
]


@pytest.mark.parametrize("arch,fault,layer,stage", FAULTS)
def test_bisect_names_the_injected_fault(run_apr, make_model, arch, fault, layer, stage):
    proc = run_apr("bisect", make_model(arch), "--backend-a", "cpu", "--backend-b", "cpu-fault",
                   "--tokens", TOKENS, "--json", env={"APR_CPU_FAULT": fault}, check_exit=1)
    j = json.loads(proc.stdout)
    assert j["schema"] == "apr-bisect-v1"
    first = j["first_divergence"]
    assert (first["layer"], first["stage"]) == (layer, stage)
    assert first["cosine_sim"] < 0.999
    if first["previous"] is not None:
        assert first["previous"]["cosine_sim"] >= 0.999


def test_bisect_text_report_and_clean_run(run_apr, make_model, tmp_path):
    model = make_model("qwen2")
    report = tmp_path / "report.html"
    proc = run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "cpu-fault", "--report",
                   report, "--keep", tmp_path / "keep", env={"APR_CPU_FAULT": "1:ffn_gate"},
                   check_exit=1)
    assert "first divergence: layer 1 ffn_gate" in proc.stdout
    assert "stage before it: layer 1 ffn_norm, cosine 1.000000" in proc.stdout
    assert (tmp_path / "keep" / "a" / "manifest.json").is_file()
    assert (tmp_path / "keep" / "b" / "layer-1" / "ffn_gate.bin").is_file()
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and 'class="first"' in html
    for forbidden in ("<script", "<link", "http://", "https://", "src="):
        assert forbidden not in html
    # No fault: exit 0 and the table still printed.
    proc = run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "cpu-fault", check_exit=0)
    assert "no divergence" in proc.stdout and "softmax" in proc.stdout


def test_bisect_errors_exit_2(run_apr, make_model, tmp_path):
    model = make_model("qwen2")
    run_apr("bisect", model, "--backend-a", "cpu", check_exit=2)
    run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "nope", check_exit=2)
    run_apr("bisect", model, "--backend-a", "cpu", "--reference", tmp_path / "none", check_exit=2)
    run_apr("bisect", tmp_path / "no.gguf", "--backend-a", "cpu", "--backend-b", "cpu",
            check_exit=2)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_bisect_against_float64_reference(run_apr, make_model, tmp_path, arch):
    model = make_model(arch)
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, str(REPO / "tests" / "reference" / "ref_forward.py"),
                    str(model), "--tokens", TOKENS, "--trace-dir", str(ref)], check=True,
                   capture_output=True)
    proc = run_apr("bisect", model, "--backend-a", "cpu", "--reference", ref, "--tokens", TOKENS,
                   "--min-cosine", "0.99999", "--json", check_exit=0)
    j = json.loads(proc.stdout)
    assert j["first_divergence"] is None
    assert j["measured"] == len(j["rows"]) >= 35
    # The same comparison must be able to fail: a perturbed backend against the reference.
    proc = run_apr("bisect", model, "--backend-a", "cpu-fault", "--reference", ref, "--tokens",
                   TOKENS, "--min-cosine", "0.99999", "--json",
                   env={"APR_CPU_FAULT": "1:attention:0.01"}, check_exit=1)
    first = json.loads(proc.stdout)["first_divergence"]
    assert (first["layer"], first["stage"]) == (1, "attention")


@pytest.mark.parametrize("backend", ["vulkan", "cuda"])
@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_other_backends_agree_with_cpu(run_apr, make_model, arch, backend):
    """Every backend emits every stage with the CPU's meaning and layout (F32 weights)."""
    proc = run_apr("bisect", make_model(arch), "--backend-a", "cpu", "--backend-b", backend,
                   "--tokens", TOKENS, "--json")
    if proc.returncode == 2 and "is not available" in proc.stderr:
        pytest.skip(f"no {backend} backend here")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    j = json.loads(proc.stdout)
    assert j["measured"] == len(j["rows"]) == (37 if arch == "qwen2" else 35)
