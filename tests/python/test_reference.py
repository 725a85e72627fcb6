# SPDX-License-Identifier: MIT
"""Self-checks of the float64 reference forward pass (tests/reference/ref_forward.py)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize

import ref_forward as ref
from conftest import REFERENCE


def test_rope_variants_differ_and_rotate():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 3, 16))
    pos = np.arange(5)
    neox = ref.apply_rope(x, pos, 16, 1e4, neox=True)
    norm = ref.apply_rope(x, pos, 16, 1e4, neox=False)
    assert np.allclose(neox[0], x[0]) and np.allclose(norm[0], x[0])  # position 0: identity
    assert np.abs(neox[1:] - norm[1:]).max() > 0.1
    # Each variant rotates its own pairs, so the norm of every pair is preserved.
    assert np.allclose(np.hypot(neox[..., :8], neox[..., 8:]), np.hypot(x[..., :8], x[..., 8:]))
    assert np.allclose(np.hypot(norm[..., 0::2], norm[..., 1::2]),
                       np.hypot(x[..., 0::2], x[..., 1::2]))  # fmt: skip
    # NORM on interleaved rows equals NEOX on rotate-half rows (the llama GGUF permutation).
    perm = np.empty(16, dtype=int)
    perm[0::2], perm[1::2] = np.arange(8), np.arange(8, 16)
    assert np.allclose(ref.apply_rope(x[..., perm], pos, 16, 1e4, neox=False), neox[..., perm])


@pytest.mark.parametrize("neox", [True, False])
def test_rope_scores_depend_only_on_relative_position(neox):
    rng = np.random.default_rng(12)
    q, k = rng.standard_normal((1, 1, 32)), rng.standard_normal((1, 1, 32))
    dots = []
    for p_q, p_k in ((3, 1), (10, 8), (102, 100)):
        rq = ref.apply_rope(q, np.array([p_q]), 32, 1e6, neox)
        rk = ref.apply_rope(k, np.array([p_k]), 32, 1e6, neox)
        dots.append(float((rq * rk).sum()))
    assert dots[0] == pytest.approx(dots[1], rel=1e-9) == pytest.approx(dots[2], rel=1e-9)
    assert dots[0] != pytest.approx(float((q * k).sum()), rel=1e-3)


def test_rope_angle_formula():
    theta = ref.rope_angles(np.array([7]), 8, 1e4)
    assert theta[0] == pytest.approx([7 * 1e4 ** (-2 * i / 8) for i in range(4)], rel=1e-15)


def test_attention_rows_sum_to_one_and_are_causal():
    rng = np.random.default_rng(13)
    q = rng.standard_normal((6, 4, 8))
    k, v = rng.standard_normal((6, 2, 8)), rng.standard_normal((6, 2, 8))
    scores, probs, out = ref.causal_attention(q, k, v, n_rep=2)
    assert np.allclose(probs.sum(axis=-1), 1.0, atol=1e-12)
    upper = np.triu(np.ones((6, 6), dtype=bool), k=1)
    assert np.all(probs[:, upper] == 0) and np.all(scores[:, upper] == 0)
    assert np.all(probs[:, ~upper] > 0)
    # Position 0 sees only itself; query heads 0, 1 share KV head 0 and heads 2, 3 share head 1.
    assert np.allclose(out[0].reshape(4, 8), np.repeat(v[0], 2, axis=0))


def rms_norm_loop(x, w, eps):
    mean = sum(v * v for v in x) / len(x)
    s = 1.0 / math.sqrt(mean + eps)
    return [x[i] * s * w[i] for i in range(len(x))]


def matvec_loop(m, x):
    return [sum(m[r][c] * x[c] for c in range(len(x))) for r in range(len(m))]


def rope_loop(vec, pos, n_rot, base, neox):
    out = list(vec)
    for i in range(n_rot // 2):
        theta = pos * base ** (-2.0 * i / n_rot)
        a, b = (i, i + n_rot // 2) if neox else (2 * i, 2 * i + 1)
        out[a] = vec[a] * math.cos(theta) - vec[b] * math.sin(theta)
        out[b] = vec[a] * math.sin(theta) + vec[b] * math.cos(theta)
    return out


def forward_by_loops(path, tokens):
    """A one-token-at-a-time forward with explicit loops and a KV cache, written independently of
    the vectorised reference (plain Python lists, math.exp)."""
    r = GGUFReader(str(path))
    arch = r.fields["general.architecture"].contents()
    meta = lambda k: r.fields[f"{arch}.{k}"].contents()  # noqa: E731
    hidden, layers = meta("embedding_length"), meta("block_count")
    n_head, n_kv = meta("attention.head_count"), meta("attention.head_count_kv")
    eps, base = meta("attention.layer_norm_rms_epsilon"), meta("rope.freq_base")
    hd = hidden // n_head
    W = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64).reshape(
        tuple(int(d) for d in reversed(t.shape))).tolist() for t in r.tensors}  # fmt: skip
    cache = [([], []) for _ in range(layers)]
    all_logits = []
    for pos, tok in enumerate(tokens):
        x = list(W["token_embd.weight"][tok])
        for li in range(layers):
            p = f"blk.{li}."
            h = rms_norm_loop(x, W[p + "attn_norm.weight"], eps)
            q, k, v = (matvec_loop(W[p + f"attn_{n}.weight"], h) for n in "qkv")
            if p + "attn_q.bias" in W:
                q = [a + b for a, b in zip(q, W[p + "attn_q.bias"])]
                k = [a + b for a, b in zip(k, W[p + "attn_k.bias"])]
                v = [a + b for a, b in zip(v, W[p + "attn_v.bias"])]
            neox = arch == "qwen2"
            rope_heads = lambda v_, n: sum(  # noqa: E731
                (rope_loop(v_[j * hd : (j + 1) * hd], pos, hd, base, neox) for j in range(n)), [])
            q, k = rope_heads(q, n_head), rope_heads(k, n_kv)
            cache[li][0].append(k)
            cache[li][1].append(v)
            attn = []
            for j in range(n_head):
                g = j // (n_head // n_kv)
                qh = q[j * hd:(j + 1) * hd]
                s = [sum(qh[d] * kt[g * hd + d] for d in range(hd)) / math.sqrt(hd)
                     for kt in cache[li][0]]  # fmt: skip
                m = max(s)
                e = [math.exp(v_ - m) for v_ in s]
                z = sum(e)
                attn += [sum(e[t] / z * cache[li][1][t][g * hd + d] for t in range(len(e)))
                         for d in range(hd)]  # fmt: skip
            o = matvec_loop(W[p + "attn_output.weight"], attn)
            x = [a + b for a, b in zip(x, o)]
            h = rms_norm_loop(x, W[p + "ffn_norm.weight"], eps)
            gate = matvec_loop(W[p + "ffn_gate.weight"], h)
            up = matvec_loop(W[p + "ffn_up.weight"], h)
            act = [gv / (1.0 + math.exp(-gv)) * uv for gv, uv in zip(gate, up)]
            x = [a + b for a, b in zip(x, matvec_loop(W[p + "ffn_down.weight"], act))]
        h = rms_norm_loop(x, W["output_norm.weight"], eps)
        all_logits.append(matvec_loop(W.get("output.weight", W["token_embd.weight"]), h))
    return np.array(all_logits)


@pytest.mark.parametrize("arch,file_type,tied", [("qwen2", "F32", False), ("llama", "F32", False),
                                                 ("qwen2", "Q4_0", True)])  # fmt: skip
def test_vectorised_reference_equals_explicit_loops(models, arch, file_type, tied):
    path = models.get(arch, "tiny", file_type, layers=1, hidden=32, ffn=64, vocab=300, tied=tied)
    tokens = [5, 260, 17, 99, 3]
    expected = forward_by_loops(path, tokens)
    got = ref.forward(path, tokens)["logits"]
    assert got.shape == (5, 300)
    assert np.abs(got - expected).max() <= 1e-10 * max(1.0, np.abs(expected).max())
    assert np.abs(expected).max() > 0.5  # not a degenerate all-zero model


def test_llama_and_qwen2_rope_change_the_logits(models):
    """The same weights with the other RoPE pairing give different logits past position 0."""
    path = models.get("llama", "tiny", "F32")
    m = ref.Model(path)
    base = ref.forward(m, [1, 2, 3, 4])["logits"]
    m.hp.arch = "qwen2"
    swapped = ref.forward(m, [1, 2, 3, 4])["logits"]
    assert np.allclose(base[0], swapped[0], atol=1e-12)
    assert np.abs(base[1:] - swapped[1:]).max() > 1e-3


STAGE_SHAPES = {  # element counts for seq=3, tiny qwen2: hidden 64, q 64, kv 32, ffn 128, heads 4
    "attn_norm": 3 * 64, "qkv_matmul": 3 * 128, "qkv_bias": 3 * 128, "q_post_rope": 3 * 64,
    "k_post_rope": 3 * 32, "attn_scores": 4 * 9, "attn_softmax": 4 * 9, "attention": 3 * 64,
    "attn_out": 3 * 64, "post_attn_residual": 3 * 64, "ffn_norm": 3 * 64, "ffn_gate": 3 * 128,
    "ffn_up": 3 * 128, "ffn_silu": 3 * 128, "ffn_swigl": 3 * 128, "ffn_out": 3 * 64,
    "post_ffn_residual": 3 * 64,
}  # fmt: skip


def test_cli_trace_and_logits(models, tmp_path):
    path = models.get("qwen2", "tiny", "F32")
    out = tmp_path / "logits.npy"
    trace = tmp_path / "trace"
    proc = subprocess.run([sys.executable, str(REFERENCE / "ref_forward.py"), str(path), "--tokens",
                           "1,2,3", "--out", str(out), "--trace-dir", str(trace)],
                          check=True, capture_output=True, text=True)  # fmt: skip
    summary = json.loads(proc.stdout)
    logits = np.load(out)
    assert logits.dtype == np.float64 and logits.shape == (3, 512)
    assert np.array_equal(logits, ref.forward(path, [1, 2, 3])["logits"])
    assert summary["argmax"] == logits.argmax(axis=1).tolist()

    layer, emb = ref.read_aprt(trace / "layer-0" / "embedding.bin")
    assert layer == 0 and emb.size == 3 * 64
    assert not (trace / "layer-1" / "embedding.bin").exists()
    for li in range(2):
        for stage, count in STAGE_SHAPES.items():
            layer, values = ref.read_aprt(trace / f"layer-{li}" / f"{stage}.bin")
            assert layer == li and values.size == count, (li, stage)
    layer, final = ref.read_aprt(trace / "final_norm.bin")
    assert layer == 0xFFFFFFFF and final.size == 3 * 64
    layer, head = ref.read_aprt(trace / "lm_head.bin")
    assert layer == 0xFFFFFFFF and np.allclose(head, logits[-1], rtol=1e-6, atol=1e-6)
    # Stages chain: the residual after attention is the embedding plus the attention output.
    _, attn_out = ref.read_aprt(trace / "layer-0" / "attn_out.bin")
    _, resid = ref.read_aprt(trace / "layer-0" / "post_attn_residual.bin")
    assert np.allclose(resid, emb + attn_out, atol=1e-5)
    _, probs = ref.read_aprt(trace / "layer-1" / "attn_softmax.bin")
    assert np.allclose(probs.reshape(4, 3, 3).sum(axis=-1), 1.0, atol=1e-6)
    _, raw = ref.read_aprt(trace / "layer-0" / "qkv_matmul.bin")
    _, biased = ref.read_aprt(trace / "layer-0" / "qkv_bias.bin")
    assert np.abs(raw - biased).max() > 0.01


def test_llama_trace_has_no_bias_stage(models):
    stages = ref.forward(models.get("llama", "tiny", "F32"), [1, 2], trace=True)["stages"]
    assert (0, "qkv_matmul") in stages and (0, "qkv_bias") not in stages


def test_cli_rejects_bad_tokens(models):
    proc = subprocess.run([sys.executable, str(REFERENCE / "ref_forward.py"),
                           str(models.get("llama", "tiny", "F32")), "--tokens", "1,99999"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "out of range" in proc.stderr


@pytest.mark.parametrize("preset", ["tiny", "small"])
@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_greedy_decoding_does_not_collapse(models, arch, preset):
    m = ref.Model(models.get(arch, preset, "F32"))
    for prompt in ([1, 2, 3], [100, 7], [42]):
        ids, rows = ref.greedy(m, prompt, 6)
        assert len(set(ids[:4])) >= 2, f"{prompt} -> {ids}"
        assert ids[0] != prompt[-1] or ids[1] != prompt[-1]
        assert np.abs(rows).max() < 100 and rows.std(axis=1).min() > 0.3


def test_activations_stay_order_one(models):
    path = models.get("qwen2", "small", "F32")
    stages = ref.forward(path, list(range(10, 30)), trace=True)["stages"]
    for li in range(4):
        rms = float(np.sqrt(np.mean(stages[(li, "post_ffn_residual")] ** 2)))
        assert 0.3 < rms < 5.0, (li, rms)


# Measured on llama/small with these tokens (max |Δlogit| / max |logit| against F32): F16 6e-4,
# BF16 4.5e-3, Q8_0 0.018, Q6_K 0.051, Q4_K_M 0.22, Q4_0 0.24, Q2_K 0.82. Random-weight models
# amplify weight noise about threefold, and the generator's quantizers are simple, not optimal.
@pytest.mark.parametrize("file_type,rel", [("F16", 0.002), ("Q8_0", 0.03), ("Q6_K", 0.08),
                                           ("Q4_K_M", 0.3)])  # fmt: skip
def test_quantized_files_approximate_the_f32_logits(models, file_type, rel):
    tokens = [3, 14, 15, 92, 65]
    exact = ref.forward(models.get("llama", "small", "F32"), tokens)["logits"]
    approx = ref.forward(models.get("llama", "small", file_type), tokens)["logits"]
    err = np.abs(approx - exact).max() / np.abs(exact).max()
    assert 0 < err <= rel


def test_rope_freqs_change_the_reference(models):
    """Llama 3.1's rope_freqs.weight divides the RoPE angles: a reference that ignored it would
    still agree with a backend that ignored it, so check that it matters for the test prompt."""
    with_factors = models.get("llama", "tiny", "F32", rope_freqs=True)
    without = models.get("llama", "tiny", "F32")
    tokens = list(range(3, 40))
    a = ref.forward(with_factors, tokens)["logits"]
    b = ref.forward(without, tokens)["logits"]
    assert np.abs(a - b).max() > 1e-2
