# SPDX-License-Identifier: MIT
"""`apr bisect --isolate` and `--export-case`, and `apr plugin-check --case`, on the newer families
(qwen3, gemma2, gemma3, phi3): the models of tests/fixtures/arch (llama.cpp's conversion of tiny
transformers models), with faults planted in the cpu-fault plugin (APR_CPU_FAULT, see
plugins/cpu/README.md) at the stages and operations of ABI 1.3. Bisect must name the stage, the
isolated kernel must be blamed, the exported case must carry the layer's constants (window,
soft-caps, scales, activation), pass on the cpu plugin and fail on the faulty one; a plugin that
lacks the case's operation is refused with a one-line reason."""

import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "arch"
# Eight tokens of the fixtures' prompts: past the gemma fixtures' sliding window of 4.
TOKENS = "143,131,77,196,167,131,192,22"


def fixture_model(family: str) -> Path:
    path = FIXTURES / family / "model.gguf"
    if not path.is_file():
        pytest.skip(f"no fixture {path} (tools/arch-fixtures.sh makes it)")
    return path


def plugin_path(run_apr, name) -> str:
    plugins = json.loads(run_apr("plugins", "--json", check_exit=0).stdout)["plugins"]
    return next(p["path"] for p in plugins if p["name"] == name)


# (family, fault, bisect options, expected (step, layer, stage), kernel, config members the case
# must carry). Faults without `kernel` perturb a stage where the host hands it to trace_emit; with
# `kernel`, inside the kernel that makes it (ffn_gelu and ffn_geglu: swiglu with GELU).
PLANTED = [
    ("qwen3", "1:q_norm:0.5", [], (0, 1, "q_norm"), "rms_norm", {}),
    ("qwen3", "0:k_norm:0.5@rows=1", ["--decode-steps", "2"], (1, 0, "k_norm"), "rms_norm", {}),
    ("gemma2", "0:ffn_geglu:0.5@kernel", [], (0, 0, "ffn_geglu"), "swiglu",
     {"ffn_activation": 1}),
    ("gemma2", "2:attention:0.5@kernel,rows=1", ["--decode-steps", "2"], (1, 2, "attention"),
     "attention", {"window": 4, "attn_softcap": 5.0}),
    ("gemma2", "none:lm_head:0.5@kernel", [], (0, None, "lm_head"), "matmul",
     {"final_softcap": 8.0}),
    ("gemma3", "0:ffn_gelu:0.5@kernel", [], (0, 0, "ffn_gelu"), "swiglu", {"ffn_activation": 1}),
    ("gemma3", "1:attn_post_norm:0.5", [], (0, 1, "attn_post_norm"), "rms_norm", {}),
    ("gemma3", "4:ffn_post_norm:0.5", [], (0, 4, "ffn_post_norm"), "rms_norm", {}),
    ("gemma3", "2:attention:0.5@kernel,split", ["--ubatch-b", "3"], (0, 2, "attention"),
     "attention", {"window": 4}),
    ("gemma3", "0:embedding:0.3@kernel", [], (0, 0, "embedding"), "embed",
     {"embd_scale": math.sqrt(48)}),
    ("gemma3", "5:attn_scores:0.5", [], (0, 5, "attn_scores"), "attention", {}),
    ("phi3", "1:attention:0.5@kernel", [], (0, 1, "attention"), "attention", {}),
    ("phi3", "0:k_post_rope:0.5", [], (0, 0, "k_post_rope"), "rope", {}),
]


@pytest.mark.parametrize("family,fault,extra,where,kernel,config", PLANTED)
def test_a_fault_at_a_newer_stage_is_isolated_and_exported(run_apr, tmp_path, family, fault,
                                                           extra, where, kernel, config):
    case = tmp_path / "case"
    proc = run_apr("bisect", fixture_model(family), "--backend-a", "cpu", "--backend-b",
                   "cpu-fault", "--tokens", TOKENS, "--json", "--isolate", "--export-case", case,
                   *extra, env={"APR_CPU_FAULT": fault}, check_exit=1)
    d = json.loads(proc.stdout)["first_divergence"]
    assert (d["step"], d["layer"], d["stage"]) == where
    assert d["isolate"]["verdict"] == "kernel" and d["isolate"]["kernel"] == kernel

    desc = json.loads((case / "case.json").read_text())
    assert desc["format"] == "apr-kernel-case-v1"
    assert (desc["stage"], desc["kernel"], desc["step"]) == (where[2], kernel, where[0])
    for key, value in config.items():
        assert desc["config"][key] == pytest.approx(value), key
    assert desc["ubatch"] == (3 if "--ubatch-b" in extra else 0)
    if where[2] == "attention" and family == "gemma2":
        # Layer 2 slides; its RoPE base is the model's (gemma2 has one base for every layer).
        assert desc["config"]["rope_freq_base"] == 10000.0
    if where[2] == "k_post_rope" and family == "phi3":
        assert desc["config"].get("attn_scale") is None  # the fixture has no LongRoPE
    if family in ("qwen3", "gemma3") and where[2] in ("q_post_rope", "k_post_rope"):
        assert [i["role"] for i in desc["inputs"]] == ["q" if where[2][0] == "q" else "k"]

    proc = run_apr("plugin-check", "--case", case, plugin_path(run_apr, "cpu"), "--json",
                   check_exit=0)
    j = json.loads(proc.stdout)
    assert j["passed"] and j["stage"] == where[2] and j["nmse"] <= 1e-5
    proc = run_apr("plugin-check", "--case", case, plugin_path(run_apr, "cpu-fault"),
                   env={"APR_CPU_FAULT": fault}, check_exit=1)
    assert proc.stdout.startswith("FAIL  ")


def test_qk_norm_feeds_rope_and_a_sliding_layer_keeps_its_base(run_apr, tmp_path):
    """gemma3: RoPE's case reads q_norm's output, and a local layer's case carries the local
    base 10000 and its window while the global layer 5 has the model's base and none."""
    model = fixture_model("gemma3")
    for layer, base, window in ((2, 10000.0, 4), (5, 1e6, None)):
        case = tmp_path / f"rope-{layer}"
        run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "cpu-fault", "--tokens",
                TOKENS, "--export-case", case, env={"APR_CPU_FAULT": f"{layer}:q_post_rope:0.5"},
                check_exit=1)
        desc = json.loads((case / "case.json").read_text())
        assert (desc["stage"], desc["layer"]) == ("q_post_rope", layer)
        assert [i["role"] for i in desc["inputs"]] == ["q"]
        assert desc["config"]["rope_freq_base"] == base
        assert desc["config"].get("window") == window
        j = json.loads(run_apr("plugin-check", "--case", case, plugin_path(run_apr, "cpu"),
                               "--json", check_exit=0).stdout)
        assert j["passed"]


def test_a_plugin_without_the_operation_is_refused_in_one_line(run_apr, tmp_path):
    """The example plugin speaks ABI 1.3 but has none of its operations."""
    example = plugin_path(run_apr, "example")
    for family, fault, message in [
        ("qwen3", "0:k_norm:0.5",
         "backend 'example' (device 0) lacks per-head RMSNorm of Q and K, which this k_norm case "
         "needs"),
        ("gemma2", "0:attention:0.5@kernel",
         "backend 'example' (device 0) lacks sliding-window attention, soft-capped attention "
         "scores, which this attention case needs"),
        ("gemma3", "0:ffn_gelu:0.5@kernel",
         "backend 'example' (device 0) lacks the GELU-gated feed-forward, which this ffn_gelu "
         "case needs"),
    ]:
        case = tmp_path / family
        run_apr("bisect", fixture_model(family), "--backend-a", "cpu", "--backend-b",
                "cpu-fault", "--tokens", TOKENS, "--export-case", case,
                env={"APR_CPU_FAULT": fault}, check_exit=1)
        proc = run_apr("plugin-check", "--case", case, example, check_exit=2)
        assert proc.stderr == f"apr: error: {message}\n"
    # A case of an operation it has runs on it (phi3 needs nothing of ABI 1.3).
    case = tmp_path / "phi3"
    run_apr("bisect", fixture_model("phi3"), "--backend-a", "cpu", "--backend-b", "cpu-fault",
            "--tokens", TOKENS, "--export-case", case,
            env={"APR_CPU_FAULT": "1:attention:0.5@kernel"}, check_exit=1)
    j = json.loads(run_apr("plugin-check", "--case", case, example, "--json",
                           check_exit=0).stdout)
    assert j["passed"] and j["backend"] == "example"
