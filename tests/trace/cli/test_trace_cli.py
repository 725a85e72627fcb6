# SPDX-License-Identifier: MIT
"""`apr trace`: layout, manifest, byte-identical reruns, and one-line errors with exit 2."""

import json
import os
from pathlib import Path

import pytest

from conftest import read_aprt

TOKENS = "1,17,250,99,4,33,7"
PER_LAYER = ["attn_norm", "qkv_matmul", "qkv_bias", "q_post_rope", "k_post_rope", "attn_scores",
             "attn_softmax", "attention", "attn_out", "post_attn_residual", "ffn_norm", "ffn_gate",
             "ffn_up", "ffn_silu", "ffn_swigl", "ffn_out", "post_ffn_residual"]  # fmt: skip


def expected_files(arch: str, layers) -> set:
    per_layer = [s for s in PER_LAYER if arch == "qwen2" or s != "qkv_bias"]
    files = {"final_norm.bin", "lm_head.bin"}
    for layer in layers:
        files |= {f"layer-{layer}/{s}.bin" for s in per_layer}
    if 0 in layers:
        files.add("layer-0/embedding.bin")
    return files


def listing(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*.bin")}


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_all_stages_layout_shapes_and_manifest(run_apr, make_model, tmp_path, arch):
    model = make_model(arch)
    out = tmp_path / "t"
    proc = run_apr("--backend=cpu", "trace", model, "--tokens", TOKENS, "--save-tensor", "all",
                   "--save-tensor-dir", out, "--save-tensor-layers", "0..2", check_exit=0)
    assert listing(out) == expected_files(arch, [0, 1])
    assert "manifest.json" in proc.stdout and "layer-1/ffn_swigl.bin" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "apr-trace-manifest-v1"
    assert manifest["model"]["architecture"] == arch
    assert len(manifest["model"]["sha256"]) == 64
    assert manifest["backend"]["name"] == "cpu"
    assert manifest["token_ids"] == [int(t) for t in TOKENS.split(",")]
    assert manifest["prompt"] is None
    assert {f["path"] for f in manifest["files"]} == listing(out)
    n = len(TOKENS.split(","))
    hidden, heads, kv_dim, ffn, vocab = 64, 4, 32, 128, 512  # the tiny preset
    want = {"embedding": [n, hidden], "qkv_matmul": [n, hidden + 2 * kv_dim],
            "k_post_rope": [n, kv_dim], "attn_scores": [heads, n, n], "ffn_swigl": [n, ffn],
            "final_norm": [n, hidden], "lm_head": [vocab]}  # fmt: skip
    for f in manifest["files"]:
        layer, values = read_aprt(out / f["path"])
        assert layer == (0xFFFFFFFF if f["layer"] is None else f["layer"])
        count = 1
        for d in f["shape"]:
            count *= d
        assert values.size == count, f["path"]
        assert f["dtype"] == "f32"
        if f["stage"] in want:
            assert f["shape"] == want[f["stage"]], f["path"]


def test_defaults_dir_layers_and_prompt(run_apr, make_model, tmp_path):
    model = tmp_path / "m.gguf"
    model.symlink_to(make_model("qwen2"))
    run_apr("--backend=cpu", "trace", model, "--save-tensor", "attn_norm,LM_HEAD", check_exit=0)
    out = tmp_path / "m-trace"
    assert listing(out) == {"layer-0/attn_norm.bin", "lm_head.bin"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["prompt"] == "What is 2+2?"
    assert len(manifest["token_ids"]) > 1


def test_reruns_are_byte_identical_with_threads(run_apr, make_model, tmp_path):
    model = make_model("llama")
    dirs = []
    for i, threads in enumerate([4, 4, 3]):
        out = tmp_path / f"run{i}"
        run_apr("--backend=cpu", f"--threads={threads}", "trace", model, "--prompt",
                "Tracing twice must give the same bytes.", "--save-tensor", "all",
                "--save-tensor-dir", out, "--save-tensor-layers", "0..2", check_exit=0)
        dirs.append(out)
    files = sorted(listing(dirs[0])) + ["manifest.json"]
    assert len(files) > 30
    for name in files:
        first = (dirs[0] / name).read_bytes()
        for other in dirs[1:]:
            assert (other / name).read_bytes() == first, name


@pytest.mark.parametrize("args,message", [
    (["--save-tensor", "attn_norm,,ffn_out"], "empty stage name"),
    (["--save-tensor", ""], "empty stage list"),
    (["--save-tensor", "attn_nrm"], "unknown stage 'attn_nrm'; valid stages: all, embedding"),
    (["--save-tensor", "all", "--save-tensor-layers", "2..2"], "must be greater"),
    (["--save-tensor", "all", "--save-tensor-layers", "3..1"], "must be greater"),
    (["--save-tensor", "all", "--save-tensor-layers", "one..2"], "not a layer number"),
    (["--save-tensor", "all", "--save-tensor-layers", "0..9"], "outside the model's 2 layers"),
    (["--tokens", "1,,2", "--save-tensor", "all"], "empty"),
    ([], "--save-tensor"),
])  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(run_apr, make_model, tmp_path, args, message):
    proc = run_apr("--backend=cpu", "trace", make_model("qwen2"), *args, "--save-tensor-dir",
                   tmp_path / "t", check_exit=2)
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr  # the error and a --help hint


def test_unwritable_directory_is_an_error(run_apr, make_model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_apr("--backend=cpu", "trace", make_model("qwen2"), "--save-tensor", "all",
                   "--save-tensor-dir", blocker / "sub", check_exit=2)
    assert "trace directory" in proc.stderr and str(blocker) in proc.stderr
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        proc = run_apr("--backend=cpu", "trace", make_model("qwen2"), "--save-tensor", "all",
                       "--save-tensor-dir", ro / "t", check_exit=2)
        assert "Permission denied" in proc.stderr
