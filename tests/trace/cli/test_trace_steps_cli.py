# SPDX-License-Identifier: MIT
"""`apr trace --decode-steps N` and `--ubatch N`: the step-k/ layout and v2 manifest, decode steps
that agree with evaluating the whole sequence at once, and split prompts stitched row for row."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import read_aprt

TOKENS = [1, 17, 250, 99, 4, 33, 7]
HEADS = 4  # the tiny preset


def trace(run_apr, model, out: Path, tokens, *extra, check_exit=0):
    return run_apr("--backend=cpu", "trace", model, "--tokens", ",".join(map(str, tokens)),
                   "--save-tensor", "all", "--save-tensor-layers", "0..2", "--save-tensor-dir",
                   out, *extra, check_exit=check_exit)


def values(path: Path) -> np.ndarray:
    return read_aprt(path)[1].astype(np.float64)


def close(a: np.ndarray, b: np.ndarray, rel: float = 1e-4) -> bool:
    """Equal up to f32 summation order: |a - b| <= rel * max|a| everywhere."""
    return a.shape == b.shape and np.max(np.abs(a - b)) <= rel * max(np.max(np.abs(a)), 1e-30)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_decode_steps_layout_manifest_and_greedy_tokens(run_apr, make_model, tmp_path, arch):
    model, out, n = make_model(arch), tmp_path / "t", len(TOKENS)
    proc = trace(run_apr, model, out, TOKENS, "--decode-steps", "3")
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == "apr-trace-manifest-v2"
    assert m["token_ids"] == TOKENS and m["ubatch"] == 0
    steps = m["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2, 3]
    assert [s["pos0"] for s in steps] == [0, n, n + 1, n + 2]
    assert steps[0]["tokens"] == TOKENS
    for k in range(1, 4):
        # Each step feeds the greedy choice of the step before, the argmax of its logits.
        assert steps[k]["tokens"] == [steps[k - 1]["next_token"]]
        prev_logits = values(out / (f"step-{k - 1}/" if k > 1 else "") / "lm_head.bin")
        assert steps[k - 1]["next_token"] == int(np.argmax(prev_logits))
        assert f"step {k}: token {steps[k]['tokens'][0]} at position {n + k - 1}" in proc.stdout
    # Step 0 is where prompt-only traces are; step k has the same names under step-k/.
    assert (out / "layer-1" / "ffn_out.bin").is_file()
    by_path = {f["path"]: f for f in m["files"]}
    for k in range(1, 4):
        assert by_path[f"step-{k}/layer-1/ffn_out.bin"]["shape"] == [1, 64]
        assert by_path[f"step-{k}/layer-0/attn_scores.bin"]["shape"] == [HEADS, 1, n + k]
        assert by_path[f"step-{k}/lm_head.bin"]["step"] == k
    assert {f["path"] for f in m["files"]} == {str(p.relative_to(out)) for p in out.rglob("*.bin")}


def test_a_decode_step_equals_the_whole_sequence_at_once(run_apr, make_model, tmp_path):
    """Step k through the KV cache must give what the prompt pass gives for the last row of the
    sequence prompt + fed tokens: an independent check of the cached positions."""
    model = make_model("qwen2")
    trace(run_apr, model, tmp_path / "steps", TOKENS, "--decode-steps", "2")
    fed = [s["tokens"][0] for s in
           json.loads((tmp_path / "steps" / "manifest.json").read_text())["steps"][1:]]
    trace(run_apr, model, tmp_path / "whole", TOKENS + fed)
    step2, whole = tmp_path / "steps" / "step-2", tmp_path / "whole"
    for rel in ["layer-1/attention.bin", "layer-1/post_ffn_residual.bin", "final_norm.bin"]:
        last_row = values(whole / rel).reshape(len(TOKENS) + 2, -1)[-1]
        assert close(values(step2 / rel), last_row), rel
    assert close(values(step2 / "lm_head.bin"), values(whole / "lm_head.bin"))
    scores = values(whole / "layer-1/attn_scores.bin").reshape(HEADS, len(TOKENS) + 2, -1)
    assert close(values(step2 / "layer-1/attn_scores.bin").reshape(HEADS, -1), scores[:, -1, :])


@pytest.mark.parametrize("ubatch", [1, 3])
def test_a_split_prompt_is_stitched_to_the_unsplit_shapes(run_apr, make_model, tmp_path, ubatch):
    model = make_model("llama")
    trace(run_apr, model, tmp_path / "one", TOKENS)
    proc = trace(run_apr, model, tmp_path / "split", TOKENS, "--ubatch", str(ubatch))
    assert f"micro-batches of {ubatch} tokens" in proc.stdout
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())
    split = json.loads((tmp_path / "split" / "manifest.json").read_text())
    assert split["ubatch"] == ubatch and split["format"] == "apr-trace-manifest-v2"
    assert [f["shape"] for f in split["files"]] == [f["shape"] for f in one["files"]]
    for f in one["files"]:
        assert close(values(tmp_path / "split" / f["path"]), values(tmp_path / "one" / f["path"])), \
            f["path"]


def test_step_tokens_are_fed_and_checked(run_apr, make_model, tmp_path):
    model = make_model("qwen2")
    trace(run_apr, model, tmp_path / "t", TOKENS, "--decode-steps", "2", "--step-tokens", "5,6")
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert [s["tokens"] for s in m["steps"][1:]] == [[5], [6]]
    for args, message in [
        (["--decode-steps", "2", "--step-tokens", "5"], "--step-tokens gives 1 ids for 2"),
        (["--step-tokens", "5"], "--step-tokens needs --decode-steps"),
        (["--decode-steps", "-1"], "--decode-steps must be"),
        (["--decode-steps", "5000"], "--decode-steps must be"),
        (["--decode-steps", "1", "--step-tokens", "99999"], "outside the vocabulary"),
    ]:
        proc = trace(run_apr, model, tmp_path / "bad", TOKENS, *args, check_exit=2)
        assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "bad").exists()


def test_a_prompt_only_trace_keeps_the_v1_manifest(run_apr, make_model, tmp_path):
    trace(run_apr, make_model("qwen2"), tmp_path / "t", TOKENS, "--ubatch", str(len(TOKENS)))
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert m["format"] == "apr-trace-manifest-v1" and "steps" not in m
