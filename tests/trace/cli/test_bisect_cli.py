# SPDX-License-Identifier: MIT
"""`apr bisect`: names the injected fault's layer and stage, is clean against the float64
reference, writes a self-contained HTML report, exits 0/1/2, and judges by cosine and NMSE
(--min-cosine, --max-nmse)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    # Diverged by the default rule: cosine below 0.999 or NMSE above 1e-5, each named in "failed".
    assert first["failed"] and set(first["failed"]) <= {"cosine", "nmse"}
    assert ("cosine" in first["failed"]) == (first["cosine_sim"] < 0.999)
    assert ("nmse" in first["failed"]) == (first["nmse"] > 1e-5)
    if first["previous"] is not None:
        assert first["previous"]["cosine_sim"] >= 0.999 and first["previous"]["nmse"] <= 1e-5


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


def aprt_values(path):
    data = Path(path).read_bytes()
    return np.frombuffer(data[12:], dtype="<f4").astype(np.float64)


@pytest.mark.parametrize("value,message", [
    ("-0.5", "--max-nmse must be a number >= 0"),
    ("nan", "--max-nmse must be a number >= 0"),
    ("x", "the argument ('x') for option '--max-nmse' is invalid"),
])
def test_bisect_max_nmse_errors(run_apr, make_model, value, message):
    proc = run_apr("bisect", make_model("qwen2"), "--backend-a", "cpu", "--backend-b", "cpu",
                   f"--max-nmse={value}", check_exit=2)
    assert message in proc.stderr and "tracing" not in proc.stderr, proc.stderr


def test_bisect_json_metrics_and_help(run_apr, make_model, tmp_path):
    """bisect --json rows carry nmse, rel_l2, max_abs_diff (lm_head also top1_agree, kl_div),
    equal to float64 numbers computed from the kept traces."""
    proc = run_apr("bisect", make_model("llama"), "--backend-a", "cpu", "--backend-b",
                   "cpu-fault", "--tokens", TOKENS, "--json", "--keep", tmp_path / "k",
                   env={"APR_CPU_FAULT": "1:ffn_gate:0.05"}, check_exit=1)
    j = json.loads(proc.stdout)
    assert j["max_nmse"] == 1e-5 and j["min_cosine"] == 0.999
    for row in j["rows"]:
        rel = (f"layer-{row['layer']}/" if row["layer"] is not None else "") + row["stage"] + ".bin"
        a = aprt_values(tmp_path / "k" / "a" / rel)
        b = aprt_values(tmp_path / "k" / "b" / rel)
        nmse = ((a - b) ** 2).sum() / (a * a).sum()
        assert row["nmse"] == pytest.approx(nmse, rel=1e-9, abs=1e-300), rel
        assert row["rel_l2"] == pytest.approx(np.sqrt(nmse), rel=1e-9, abs=1e-300), rel
        assert row["below_threshold"] == (row["cosine_sim"] < 0.999 or row["nmse"] > 1e-5)
        if row["stage"] == "lm_head":
            p = np.exp(a - a.max())
            p /= p.sum()
            q = np.exp(b - b.max())
            q /= q.sum()
            assert row["kl_div"] == pytest.approx((p * np.log(p / q)).sum(), rel=1e-6)
            assert row["top1_agree"] == float(np.argmax(a) == np.argmax(b))
    first = j["first_divergence"]
    assert (first["layer"], first["stage"]) == (1, "ffn_gate")
    assert {"nmse", "max_abs_diff", "rel_l2", "failed"} <= first.keys()
    help_text = run_apr("bisect", "--help", check_exit=0).stdout
    assert "--max-nmse arg (=1e-5)" in help_text and "sum (a-b)^2 / sum a^2" in help_text


def test_bisect_names_a_scale_fault_by_nmse(run_apr, make_model, tmp_path):
    """A reference whose layer 0 attn_out is x 1.5 (cosine 1): named there, by NMSE, in the
    text, the JSON and the HTML report; cosine alone (--max-nmse inf) passes it."""
    model = make_model("qwen2")
    ref = tmp_path / "ref"
    run_apr("--backend=cpu", "trace", model, "--tokens", TOKENS, "--save-tensor", "all",
            "--save-tensor-layers", "0..2", "--save-tensor-dir", ref, check_exit=0)
    f = ref / "layer-0" / "attn_out.bin"
    header = f.read_bytes()[:12]
    f.write_bytes(header + (aprt_values(f) * 1.5).astype("<f4").tobytes())
    report = tmp_path / "r.html"
    proc = run_apr("bisect", model, "--backend-a", "cpu", "--reference", ref, "--report", report,
                   check_exit=1)
    assert "first divergence: layer 0 attn_out, NMSE 0.25 > 1e-05 (cosine " in proc.stdout
    assert "stage before it: layer 0 attention, cosine 1.000000, NMSE 0" in proc.stdout
    html = report.read_text()
    assert "failed: NMSE 0.25 &gt; 1e-05" in html and "NMSE &le; 1e-05" in html
    j = json.loads(run_apr("bisect", model, "--backend-a", "cpu", "--reference", ref, "--json",
                           check_exit=1).stdout)
    first = j["first_divergence"]
    assert (first["layer"], first["stage"], first["failed"]) == (0, "attn_out", ["nmse"])
    assert first["cosine_sim"] > 0.9999999 and first["nmse"] == pytest.approx(0.25, rel=1e-6)
    assert first["rel_l2"] == pytest.approx(0.5, rel=1e-6)
    # Bisect's --max-nmse reaches the verdict: cosine alone, or a looser NMSE, passes it.
    run_apr("bisect", model, "--backend-a", "cpu", "--reference", ref, "--max-nmse", "inf",
            check_exit=0)
    run_apr("bisect", model, "--backend-a", "cpu", "--reference", ref, "--max-nmse", "0.26",
            check_exit=0)
