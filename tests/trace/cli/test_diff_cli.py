# SPDX-License-Identifier: MIT
"""`apr diff --values` on files and directories: metrics, UNMEASURED, JSON, exit codes, and the
verdict rule (cosine and NMSE) with --min-cosine and --max-nmse."""

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
    # sum (a-b)^2 = 1.25 over sum a^2 = 30
    assert j["nmse"] == pytest.approx(1.25 / 30, rel=1e-12)
    assert j["rel_l2"] == pytest.approx((1.25 / 30) ** 0.5, rel=1e-12)
    assert "kl_div" not in j and "top1_agree" not in j  # not lm_head
    # The same pair passes looser thresholds, both of them: NMSE 0.0417 still fails 1e-5.
    run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "b.bin", "--min-cosine", "0.9",
            "--max-nmse", "0.05", check_exit=0)
    text = run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "b.bin", "--min-cosine",
                   "0.9", check_exit=1).stdout
    assert "NMSE               0.0417" in text and "relative L2        0.204" in text
    assert "DIVERGED: NMSE 0.0417 > 1e-05 (cosine 0.979957887 >= 0.9)" in text
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


def write_scaled(src, dst, factor):
    layer = int.from_bytes(src.read_bytes()[4:8], "little")
    values = np.frombuffer(src.read_bytes()[12:], dtype="<f4")
    write_aprt(dst, layer, values.astype(np.float64) * factor)


def reference_metrics(a, b):
    """cosine, NMSE, relative L2 in float64 by numpy, independent of apr."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    nmse = ((a - b) ** 2).sum() / (a * a).sum()
    return (a @ b) / np.sqrt((a @ a) * (b @ b)), nmse, np.sqrt(nmse)


def reference_kl(a, b):
    """KL(softmax(a) || softmax(b)) in nats, float64, the textbook way (shifted by the max)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    p = np.exp(a - a.max())
    p /= p.sum()
    q = np.exp(b - b.max())
    q /= q.sum()
    return float((p * np.log(p / q)).sum())


def values_of(path):
    return np.frombuffer(path.read_bytes()[12:], dtype="<f4")


@pytest.mark.parametrize("value,message", [
    ("-1", "--max-nmse must be a number >= 0"),
    ("-1e-9", "--max-nmse must be a number >= 0"),
    ("nan", "--max-nmse must be a number >= 0"),
    ("abc", "the argument ('abc') for option '--max-nmse' is invalid"),
    ("", "the argument for option '--max-nmse' should follow immediately after the equal sign"),
])
def test_max_nmse_errors(run_apr, tmp_path, value, message):
    write_aprt(tmp_path / "a.bin", 0, [1, 2, 3])
    proc = run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "a.bin",
                   f"--max-nmse={value}", check_exit=2)
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_max_nmse_values_and_help(run_apr, tmp_path):
    write_aprt(tmp_path / "a.bin", 0, [1, 2, 3, 4])
    write_aprt(tmp_path / "b.bin", 0, [1.001, 2.002, 3.003, 4.004])  # x 1.001: NMSE 1e-6
    for value, status in [("0", 1), ("1e-7", 1), ("1e-5", 0), ("inf", 0), ("1e300", 0)]:
        run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "b.bin", "--max-nmse", value,
                check_exit=status)
    run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "a.bin", "--max-nmse", "0",
            check_exit=0)  # identical: NMSE 0 <= 0
    text = run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "b.bin", "--max-nmse",
                   "1e-7", check_exit=1).stdout
    assert "DIVERGED: NMSE 1e-06 > 1e-07 (cosine " in text
    help_text = run_apr("diff", "--help", check_exit=0).stdout
    assert "--max-nmse arg (=1e-5)" in help_text and "sum (a-b)^2 / sum a^2" in help_text


def test_scale_fault_is_named_by_nmse(run_apr, traces, tmp_path):
    """Layer 1's ffn_up x 1.5 and everything after it as the clean trace: cosine 1 everywhere,
    so only NMSE can name it."""
    b = tmp_path / "b"
    shutil.copytree(traces / "b", b)
    write_scaled(traces / "b" / "layer-1" / "ffn_up.bin", b / "layer-1" / "ffn_up.bin", 1.5)
    proc = run_apr("diff", "--values", traces / "a", b, check_exit=1)
    assert "first divergence: layer 1 ffn_up, NMSE 0.25 > 1e-05 (cosine " in proc.stdout
    assert "stage before it: layer 1 ffn_gate, cosine 1.000000, NMSE 0" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("1      ffn_up"))
    assert "DIVERGED: NMSE 0.25 > 1e-05" in line
    j = json.loads(run_apr("diff", "--values", traces / "a", b, "--json", check_exit=1).stdout)
    first = j["first_divergence"]
    cos, nmse, rel = reference_metrics(values_of(traces / "a" / "layer-1" / "ffn_up.bin"),
                                       values_of(b / "layer-1" / "ffn_up.bin"))
    assert (first["layer"], first["stage"], first["failed"]) == (1, "ffn_up", ["nmse"])
    assert first["cosine_sim"] == pytest.approx(cos, abs=1e-12) and cos > 0.9999999
    assert first["nmse"] == pytest.approx(nmse, rel=1e-9) and nmse == pytest.approx(0.25, rel=1e-6)
    assert first["rel_l2"] == pytest.approx(rel, rel=1e-9)
    assert j["max_nmse"] == 1e-5 and j["min_cosine"] == 0.999 and j["below"] == 1
    # Cosine alone cannot see it: --max-nmse inf is the rule before NMSE existed.
    run_apr("diff", "--values", traces / "a", b, "--max-nmse", "inf", check_exit=0)
    j = json.loads(run_apr("diff", "--values", traces / "a", b, "--json", "--max-nmse", "inf",
                           check_exit=0).stdout)
    assert j["max_nmse"] is None and j["first_divergence"] is None
    run_apr("diff", "--values", traces / "a", b, "--max-nmse", "0.3", check_exit=0)


def test_json_metric_fields_match_numpy(run_apr, traces):
    """Every measured row carries nmse and rel_l2, lm_head top1_agree and kl_div too, all equal
    to a float64 computation from the files."""
    j = json.loads(run_apr("diff", "--values", traces / "a", traces / "bad", "--json",
                           check_exit=1).stdout)
    for row in j["rows"]:
        rel = (f"layer-{row['layer']}/" if row["layer"] is not None else "") + row["stage"] + ".bin"
        a = values_of(traces / "a" / rel)
        b = values_of(traces / "bad" / rel)
        cos, nmse, rel_l2 = reference_metrics(a, b)
        assert row["cosine_sim"] == pytest.approx(cos, abs=1e-12), rel
        assert row["nmse"] == pytest.approx(nmse, rel=1e-9, abs=1e-300), rel
        assert row["rel_l2"] == pytest.approx(rel_l2, rel=1e-9, abs=1e-300), rel
        assert row["max_abs_diff"] == pytest.approx(np.abs(a.astype(float) - b).max(), rel=1e-12)
        if row["stage"] == "lm_head":
            assert row["logit_rows"] == 1
            assert row["top1_agree"] == float(np.argmax(a) == np.argmax(b))
            assert row["kl_div"] == pytest.approx(reference_kl(a, b), rel=1e-6, abs=1e-15)
            assert row["kl_div"] > 0  # the fault reaches the logits
        else:
            assert "kl_div" not in row and "top1_agree" not in row
    first = j["first_divergence"]
    for key in ("cosine_sim", "nmse", "max_abs_diff", "rel_l2", "failed", "previous"):
        assert key in first
    assert "nmse" in first["previous"] and "rel_l2" in first["previous"]


def test_lm_head_files_are_logits(run_apr, traces):
    a = traces / "a" / "lm_head.bin"
    b = traces / "bad" / "lm_head.bin"
    j = json.loads(run_apr("diff", "--values", a, b, "--json").stdout)
    va, vb = values_of(a), values_of(b)
    assert j["logit_rows"] == 1
    assert j["argmax_a"] == int(np.argmax(va)) and j["argmax_b"] == int(np.argmax(vb))
    assert j["top1_agree"] == float(np.argmax(va) == np.argmax(vb))
    assert j["kl_div"] == pytest.approx(reference_kl(va, vb), rel=1e-6)
    text = run_apr("diff", "--values", a, b).stdout
    assert "top-1 (argmax)" in text and "KL(a||b)" in text
    same = run_apr("diff", "--values", a, traces / "b" / "lm_head.bin", check_exit=0).stdout
    assert "top-1 (argmax)     agrees: index " in same and "KL(a||b)           0 nats" in same
