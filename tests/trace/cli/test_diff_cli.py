# SPDX-License-Identifier: MIT
"""`apr diff --values` on files and directories: metrics, UNMEASURED, JSON, exit codes."""

import json
import shutil
import struct

import numpy as np
import pytest

TOKENS = "3,1,4,1,5,9"


def write_aprt(path, layer, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.asarray(values, dtype="<f4")
    path.write_bytes(b"APRT" + struct.pack("<II", layer, values.size) + values.tobytes())


@pytest.fixture(scope="module")
def traces(run_apr, make_model, tmp_path_factory):
    """Two clean traces of the same prompt and one with layer 1's ffn_up perturbed."""
    root = tmp_path_factory.mktemp("diff")
    model = make_model("qwen2")
    for name, env in [("a", {}), ("b", {}), ("bad", {"APR_CPU_FAULT": "1:ffn_up"})]:
        backend = "cpu-fault" if env else "cpu"
        run_apr(f"--backend={backend}", "trace", model, "--tokens", TOKENS, "--save-tensor", "all",
                "--save-tensor-dir", root / name, "--save-tensor-layers", "0..2", env=env,
                check_exit=0)
    return root


def test_files_hand_computed(run_apr, tmp_path):
    write_aprt(tmp_path / "a.bin", 2, [1, 2, 3, 4])
    write_aprt(tmp_path / "b.bin", 2, [1, 2, 3.5, 3])
    proc = run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "b.bin", "--json",
                   "--limit", "2", check_exit=1)
    j = json.loads(proc.stdout)
    assert j["schema"] == "apr-stage-diff-v1"
    assert j["layer"] == 2 and j["dim_product"] == 4
    assert j["max_abs_diff"] == 1.0 and j["max_abs_diff_index"] == 3
    assert j["rms_diff"] == pytest.approx((1.25 / 4) ** 0.5, rel=1e-12)
    assert j["cosine_sim"] == pytest.approx(27.5 / (30 * 26.25) ** 0.5, rel=1e-12)
    assert j["top_diffs"] == [{"index": 3, "a": 4.0, "b": 3.0, "abs_diff": 1.0},
                              {"index": 2, "a": 3.0, "b": 3.5, "abs_diff": 0.5}]
    # The same pair passes a looser threshold.
    run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "b.bin", "--min-cosine", "0.9",
            check_exit=0)
    text = run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "a.bin", check_exit=0).stdout
    assert "cosine similarity  1.000000000" in text


def test_file_errors_exit_2(run_apr, tmp_path):
    write_aprt(tmp_path / "a.bin", 0, [1, 2, 3])
    write_aprt(tmp_path / "l1.bin", 1, [1, 2, 3])
    write_aprt(tmp_path / "short.bin", 0, [1, 2])
    (tmp_path / "junk.bin").write_bytes(b"APRT\0\0\0\0\xff\xff\0\0")
    for other, message in [("l1.bin", "layer mismatch"), ("short.bin", "element count mismatch"),
                           ("junk.bin", "byte offset 8"), ("missing.bin", "no such file")]:
        proc = run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / other, check_exit=2)
        assert message in proc.stderr
    run_apr("diff", tmp_path / "a.bin", tmp_path / "a.bin", check_exit=2)  # --values is required
    run_apr("diff", "--values", tmp_path / "a.bin", tmp_path, check_exit=2)


def test_directories(run_apr, traces):
    same = run_apr("diff", "--values", traces / "a", traces / "b", check_exit=0).stdout
    assert "no divergence" in same
    bad = run_apr("diff", "--values", traces / "a", traces / "bad", check_exit=1).stdout
    assert "first divergence: layer 1 ffn_up" in bad
    j = json.loads(run_apr("diff", "--values", traces / "a", traces / "bad", "--json").stdout)
    assert j["first_divergence"]["stage"] == "ffn_up" and j["first_divergence"]["layer"] == 1
    assert j["first_divergence"]["previous"]["stage"] == "ffn_gate"
    order = [(r["layer"] if r["layer"] is not None else 1 << 32, r["stage"]) for r in j["rows"]]
    assert order[0] == (0, "embedding") and order[-1][1] == "lm_head"


def test_unmeasured_and_nans(run_apr, traces, tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    shutil.copytree(traces / "a", a)
    shutil.copytree(traces / "b", b)
    (a / "manifest.json").unlink()  # a plain APRT tree, as aprender writes it
    (b / "manifest.json").unlink()
    (b / "layer-0" / "attn_out.bin").unlink()
    # A stage on one side only leaves the comparison without a verdict: exit 3, never 0.
    proc = run_apr("diff", "--values", a, b, check_exit=3)
    assert "attn_out            UNMEASURED (only in A)" in proc.stdout
    assert "incomplete" in proc.stdout and "neither directory has a manifest.json" in proc.stderr
    j = json.loads(run_apr("diff", "--values", a, b, "--json").stdout)
    row = next(r for r in j["rows"] if r["stage"] == "attn_out" and r["layer"] == 0)
    assert row["status"] == "unmeasured" and "cosine_sim" not in row
    assert j["measured"] == len(j["rows"]) - 1

    # One NaN in B where A is finite: counted, and the stage diverges though the cosine is ~1.
    layer, values = 0, None
    data = (b / "layer-1" / "ffn_norm.bin").read_bytes()
    values = np.frombuffer(data[12:], dtype="<f4").copy()
    values[5] = np.nan
    write_aprt(b / "layer-1" / "ffn_norm.bin", 1, values)
    proc = run_apr("diff", "--values", a, b, check_exit=1)
    assert "first divergence: layer 1 ffn_norm" in proc.stdout
    assert "1 NaN/inf on one side only" in proc.stdout
    j = json.loads(run_apr("diff", "--values", a, b, "--json").stdout)
    row = next(r for r in j["rows"] if r["stage"] == "ffn_norm" and r["layer"] == 1)
    assert row["nan_count_a"] == 0 and row["nan_count_b"] == 1
    del layer


def test_directories_from_different_prompts_are_an_error(run_apr, make_model, traces, tmp_path):
    run_apr("--backend=cpu", "trace", make_model("qwen2"), "--tokens", "1,2", "--save-tensor",
            "all", "--save-tensor-dir", tmp_path / "other", check_exit=0)
    proc = run_apr("diff", "--values", traces / "a", tmp_path / "other", check_exit=2)
    assert "different token ids" in proc.stderr
