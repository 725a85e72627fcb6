# SPDX-License-Identifier: MIT
"""`apr bisect` beyond the prompt pass: decode steps, split prompts, two configurations of one
backend, --isolate and --export-case. Each fault is planted in the cpu-fault test plugin
(APR_CPU_FAULT, see plugins/cpu/README.md) and bisect must name its (step, layer, stage)."""

import json
import shutil
from pathlib import Path

import pytest

TOKENS = "1,17,250,99,4,33,7"  # 7 prompt tokens: positions 0..6, decode steps from 7


def bisect(run_apr, model, fault, *extra, check_exit=1):
    proc = run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "cpu-fault", "--tokens",
                   TOKENS, "--json", *extra, env={"APR_CPU_FAULT": fault} if fault else None,
                   check_exit=check_exit)
    return json.loads(proc.stdout)


def plugin_path(run_apr, name) -> str:
    plugins = json.loads(run_apr("plugins", "--json", check_exit=0).stdout)["plugins"]
    return next(p["path"] for p in plugins if p["name"] == name)


def first(j):
    d = j["first_divergence"]
    return (d["step"], d["layer"], d["stage"]) if d else None


# (fault, bisect options, expected (step, layer, stage)). Faults planted by kind: only in
# one-row batches (decode), only at positions past K, only in a split prompt's later
# micro-batches, only by a constant factor (cosine stays 1: NMSE must name it).
PLANTED = [
    ("1:attn_out:0.5@rows=1", ["--decode-steps", "3"], (1, 1, "attn_out")),
    ("0:ffn_up:0.5@pos>=9", ["--decode-steps", "4"], (3, 0, "ffn_up")),
    ("1:ffn_gate:0.5@split", ["--ubatch-b", "3"], (0, 1, "ffn_gate")),
    ("1:attn_out:1.5@scale,kernel", [], (0, 1, "attn_out")),
    ("0:ffn_swigl:0.8@scale,rows=1", ["--decode-steps", "2"], (1, 0, "ffn_swigl")),
]


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("fault,extra,where", PLANTED)
def test_bisect_names_the_planted_step_layer_and_stage(run_apr, make_model, arch, fault, extra,
                                                       where):
    j = bisect(run_apr, make_model(arch), fault, *extra)
    assert first(j) == where
    d = j["first_divergence"]
    assert d["previous"] is None or d["previous"]["nmse"] <= 1e-5
    if "scale" in fault:
        assert d["cosine_sim"] > 0.9999 and d["failed"] == ["nmse"]


def test_a_decode_only_fault_is_invisible_to_a_prompt_only_bisect(run_apr, make_model):
    model = make_model("qwen2")
    j = bisect(run_apr, model, "1:attn_out:0.5@rows=1", check_exit=0)
    assert j["first_divergence"] is None and j["decode_steps"] == 0
    j = bisect(run_apr, model, "1:attn_out:0.5@rows=1", "--decode-steps", "2")
    assert first(j) == (1, 1, "attn_out") and j["decode_steps"] == 2


def test_b_is_fed_a_tokens_and_its_own_greedy_choice_is_reported(run_apr, make_model, tmp_path):
    model = make_model("qwen2")
    j = bisect(run_apr, model, "1:attn_out:0.5@rows=1", "--decode-steps", "3", "--keep",
               tmp_path)
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [s["tokens"] for s in b["steps"]] == [s["tokens"] for s in a["steps"]]
    # A's own greedy choices are what it was fed.
    assert all(a["steps"][k]["tokens"] == [a["steps"][k - 1]["next_token"]] for k in (1, 2, 3))
    # The fault changes B's logits from step 1 on: its own choice differs somewhere, and the
    # report names the first step where it does, as B's manifest records it.
    diff = j["b_greedy_differs"]
    assert diff is not None
    k = diff["after_step"]
    assert k >= 1
    assert diff["token_b"] == b["steps"][k]["next_token"] != a["steps"][k]["next_token"]
    assert all(b["steps"][i]["next_token"] == a["steps"][i]["next_token"] for i in range(k))
    text = run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "cpu-fault", "--tokens",
                   TOKENS, "--decode-steps", "3", env={"APR_CPU_FAULT": "1:attn_out:0.5@rows=1"},
                   check_exit=1).stdout
    assert "first divergence: step 1 layer 1 attn_out" in text
    assert f"B's own greedy choice differs after step {k}" in text


def test_step_tokens_feed_both_sides(run_apr, make_model, tmp_path):
    bisect(run_apr, make_model("qwen2"), "", "--decode-steps", "2", "--step-tokens", "5,6",
           "--keep", tmp_path, check_exit=0)
    for side in "ab":
        m = json.loads((tmp_path / side / "manifest.json").read_text())
        assert [s["tokens"] for s in m["steps"][1:]] == [[5], [6]]


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_self_checks_of_an_honest_backend_find_nothing(run_apr, make_model, arch):
    """Whole prompt against token by token (ubatch 1) and against micro-batches, plus decode
    steps and a thread count: the cpu backend agrees with itself."""
    model = make_model(arch)
    for extra in (["--ubatch-b", "1"], ["--ubatch-b", "3", "--decode-steps", "2"],
                  ["--threads-b", "1", "--ubatch", "2"]):
        proc = run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "cpu", "--tokens",
                       TOKENS, "--json", *extra, check_exit=0)
        j = json.loads(proc.stdout)
        assert j["first_divergence"] is None and j["below"] == 0
        assert "ubatch" in j["backend_b"] or "threads" in j["backend_b"]
    # A side-B option alone means "B is A's backend, configured differently".
    j = json.loads(run_apr("bisect", model, "--backend-a", "cpu", "--ubatch-b", "1", "--tokens",
                           TOKENS, "--json", check_exit=0).stdout)
    assert j["backend_b"].startswith("cpu ")


# (fault, options, stage, verdict): a kernel that computes wrongly from right inputs, and a
# right kernel fed a wrong KV cache (kv_store scaled V or K, which no traced stage shows).
ISOLATE = [
    ("1:attention:0.5@kernel", [], "attention", "kernel"),
    ("1:ffn_gate:0.3@kernel", [], "ffn_gate", "kernel"),
    ("1:attention:0.5@kernel,split", ["--ubatch-b", "3"], "attention", "kernel"),
    ("1:attention:0.5@kernel,rows=1", ["--decode-steps", "2"], "attention", "kernel"),
    ("1:v_cache:3@pos>=3", [], "attention", "inherited"),
    ("0:v_cache:-1@rows=1", ["--decode-steps", "2"], "attention", "inherited"),
    ("1:k_cache:-1@rows=1", ["--decode-steps", "1"], "attn_scores", "inherited"),
]


@pytest.mark.parametrize("fault,extra,stage,verdict", ISOLATE)
def test_isolate_tells_a_wrong_kernel_from_a_wrong_input(run_apr, make_model, fault, extra, stage,
                                                         verdict):
    j = bisect(run_apr, make_model("qwen2"), fault, "--isolate", *extra)
    d = j["first_divergence"]
    assert d["stage"] == stage
    iso = d["isolate"]
    assert iso["verdict"] == verdict and iso["kernel"] in ("attention", "matmul")
    if verdict == "kernel":
        assert iso["nmse"] > 1e-5
    else:
        assert iso["nmse"] <= 1e-5 and iso["cosine_sim"] >= 0.999


def test_isolate_text(run_apr, make_model):
    model = make_model("llama")
    out = run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "cpu-fault", "--tokens",
                  TOKENS, "--isolate", env={"APR_CPU_FAULT": "1:v_cache:3@pos>=3"},
                  check_exit=1).stdout
    assert "isolate: inherited: with A's inputs B's attention agrees" in out
    assert "the error comes from upstream" in out
    out = run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "cpu-fault", "--tokens",
                  TOKENS, "--isolate", env={"APR_CPU_FAULT": "0:attn_out:0.5@kernel"},
                  check_exit=1).stdout
    assert "isolate: kernel: B's matmul is wrong on A's inputs" in out


@pytest.mark.parametrize("fault,extra", [
    ("1:attention:0.5@kernel,rows=1", ["--decode-steps", "2"]),
    ("0:qkv_matmul:0.5@kernel", []),
    ("none:lm_head:0.5@kernel", []),
    ("0:embedding:0.3@kernel,pos>=4", []),
])
def test_an_exported_case_fails_on_the_faulty_plugin_and_passes_on_cpu(
        run_apr, make_model, tmp_path, fault, extra):
    case = tmp_path / "case"
    proc = run_apr("bisect", make_model("qwen2"), "--backend-a", "cpu", "--backend-b",
                   "cpu-fault", "--tokens", TOKENS, "--export-case", case, *extra,
                   env={"APR_CPU_FAULT": fault}, check_exit=1)
    assert f"case written to {case}/" in proc.stdout
    desc = json.loads((case / "case.json").read_text())
    assert desc["format"] == "apr-kernel-case-v1"
    faulty = plugin_path(run_apr, "cpu-fault")
    proc = run_apr("plugin-check", "--case", case, faulty, env={"APR_CPU_FAULT": fault},
                   check_exit=1)
    assert proc.stdout.startswith("FAIL  ")
    proc = run_apr("plugin-check", "--case", case, plugin_path(run_apr, "cpu"), "--json",
                   check_exit=0)
    j = json.loads(proc.stdout)
    assert j["passed"] and j["stage"] == desc["stage"] and j["nmse"] <= 1e-5


def test_export_case_and_isolate_errors(run_apr, make_model, tmp_path):
    model = make_model("qwen2")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for args, message in [
        (["--backend-b", "cpu-fault", "--export-case", tmp_path / "full"],
         "exists and is not an empty directory"),
        (["--reference", tmp_path, "--isolate"], "need --backend-b"),
        (["--reference", tmp_path, "--ubatch-b", "2"], "takes no --*-b option"),
        (["--backend-b", "cpu", "--step-tokens", "3"], "--step-tokens needs --decode-steps"),
        (["--backend-b", "cpu", "--decode-steps", "-2"], "--decode-steps must be"),
        (["--backend-b", "cpu", "--ubatch-b", "-2"], "--ubatch-b must be"),
    ]:
        proc = run_apr("bisect", model, "--backend-a", "cpu", "--tokens", TOKENS, *args,
                       check_exit=2)
        assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    # No divergence: nothing to export, and nothing is written.
    proc = run_apr("bisect", model, "--backend-a", "cpu", "--backend-b", "cpu", "--tokens",
                   TOKENS, "--export-case", tmp_path / "none", check_exit=0)
    assert "no divergence: no case written" in proc.stdout
    assert not (tmp_path / "none").exists()


def test_two_builds_of_one_backend(run_apr, make_model, tmp_path):
    """--plugin-dir-a/-b: each side's plugin comes from a directory of its own (two builds of one
    backend, both loaded into one process); identical builds agree."""
    builds = [tmp_path / "build-1", tmp_path / "build-2"]
    for b in builds:
        b.mkdir()
        shutil.copy(plugin_path(run_apr, "cpu"), b / "apr-plugin-cpu.so")
    j = json.loads(run_apr("bisect", make_model("qwen2"), "--backend-a", "cpu", "--backend-b",
                           "cpu", "--plugin-dir-a", builds[0], "--plugin-dir-b", builds[1],
                           "--tokens", TOKENS, "--decode-steps", "1", "--json",
                           check_exit=0).stdout)
    assert j["first_divergence"] is None
    assert str(builds[0]) in j["backend_a"] and str(builds[1]) in j["backend_b"]


# The same kinds of fault on the default model (SmolLM2-135M-Instruct, 30 layers, Q4_1).
SMOLLM2 = [
    ("3:attn_out:0.5@rows=1", ["--decode-steps", "2"], (1, 3, "attn_out"), None),
    ("1:ffn_up:0.5@pos>=7", ["--decode-steps", "3"], (2, 1, "ffn_up"), None),
    ("4:ffn_gate:0.5@split", ["--ubatch-b", "2"], (0, 4, "ffn_gate"), None),
    ("2:ffn_out:1.5@scale,kernel", ["--isolate"], (0, 2, "ffn_out"), "kernel"),
    ("7:v_cache:-1@rows=1", ["--decode-steps", "1", "--isolate"], (1, 7, "attention"),
     "inherited"),
]


@pytest.mark.parametrize("fault,extra,where,verdict", SMOLLM2)
def test_faults_in_the_default_model(run_apr, smollm2, fault, extra, where, verdict):
    proc = run_apr("bisect", smollm2, "--backend-a", "cpu", "--backend-b", "cpu-fault",
                   "--tokens", "1,504,1180,314,216,42", "--json", *extra,
                   env={"APR_CPU_FAULT": fault}, check_exit=1)
    j = json.loads(proc.stdout)
    assert first(j) == where
    if verdict:
        assert j["first_divergence"]["isolate"]["verdict"] == verdict
    if "rows=1" in fault:  # decode-only: the prompt pass alone shows nothing
        proc = run_apr("bisect", smollm2, "--backend-a", "cpu", "--backend-b", "cpu-fault",
                       "--tokens", "1,504,1180,314,216,42", env={"APR_CPU_FAULT": fault},
                       check_exit=0)
        assert "no divergence" in proc.stdout
