# SPDX-License-Identifier: MIT
"""Independent float64 reference forward pass for llama / qwen2 GGUF models.

Uses only numpy and gguf-py (GGUFReader for the container, gguf.quants.dequantize for weights),
so it shares no code with apr. Every stage is computed in float64 from the dequantized weights.

  ref_forward.py MODEL --tokens 1,2,3 [--out logits.npy] [--trace-dir DIR]

writes float64 logits [n_tokens x vocab]; --trace-dir also writes every stage as APRT files
(magic "APRT", u32 layer or 0xFFFFFFFF, u32 element count, float32 values, all little-endian) at
DIR/layer-N/<stage>.bin and DIR/<stage>.bin.
"""

import argparse
import json
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

# The matrices here are small; OpenBLAS threads only spin against each other (30x slower on a
# busy 2-core machine). Takes effect when this module is the first to import numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

WHOLE_MODEL_LAYER = 0xFFFFFFFF


@dataclass
class Hparams:
    arch: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    eps: float
    rope_base: float
    n_rot: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def _field(reader: GGUFReader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        if default is None:
            raise KeyError(f"missing metadata key {key}")
        return default
    return field.contents()


class Model:
    """The hyperparameters and float64 weights of a GGUF file."""

    def __init__(self, path: str | Path):
        reader = GGUFReader(str(path))
        arch = _field(reader, "general.architecture")
        if arch not in ("llama", "qwen2"):
            raise ValueError(f"{path}: unsupported architecture {arch!r}")
        hidden = int(_field(reader, f"{arch}.embedding_length"))
        heads = int(_field(reader, f"{arch}.attention.head_count"))
        self.hp = Hparams(
            arch=arch,
            hidden=hidden,
            layers=int(_field(reader, f"{arch}.block_count")),
            heads=heads,
            kv_heads=int(_field(reader, f"{arch}.attention.head_count_kv", heads)),
            ffn=int(_field(reader, f"{arch}.feed_forward_length")),
            eps=float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon")),
            rope_base=float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
            n_rot=int(_field(reader, f"{arch}.rope.dimension_count", hidden // heads)),
        )
        # Dequantized values are exact in float32; they are widened to float64 where used, which
        # halves the memory a 0.5B model needs.
        self.weights32: dict[str, np.ndarray] = {}
        self.types: dict[str, str] = {}
        for t in reader.tensors:
            shape = tuple(int(d) for d in reversed(t.shape))  # GGUF ne is fastest-first
            values = dequantize(t.data, t.tensor_type)
            self.weights32[t.name] = np.asarray(values, dtype=np.float32).reshape(shape)
            self.types[t.name] = t.tensor_type.name
        self.vocab = self.weights32["token_embd.weight"].shape[0]
        # Small models keep their float64 copies, which makes repeated forwards (greedy) fast.
        self._keep_f64 = sum(w.size for w in self.weights32.values()) <= 32_000_000
        self._f64: dict[str, np.ndarray] = {}

    def get(self, name: str) -> np.ndarray | None:
        """The tensor in float64, or None when the file does not have it."""
        if name in self._f64:
            return self._f64[name]
        w = self.weights32.get(name)
        if w is None:
            return None
        w = w.astype(np.float64)
        if self._keep_f64:
            self._f64[name] = w
        return w

    def rows(self, name: str, index) -> np.ndarray:
        return self.weights32[name][index].astype(np.float64)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x²) + eps) ⊙ weight, row by row (eps inside the square root)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope_angles(positions: np.ndarray, n_rot: int, base: float, factors=None) -> np.ndarray:
    """θ[p, i] = p · base^(−2i/n_rot) / factors[i] for i < n_rot/2, in float64 (factors: the
    optional rope_freqs.weight of Llama 3.1+)."""
    i = np.arange(n_rot // 2, dtype=np.float64)
    inv_freq = base ** (-2.0 * i / n_rot)
    if factors is not None:
        inv_freq = inv_freq / np.asarray(factors, dtype=np.float64)
    return positions.astype(np.float64)[:, None] * inv_freq[None, :]


def apply_rope(x: np.ndarray, positions: np.ndarray, n_rot: int, base: float, neox: bool,
               factors=None):
    """Rotates x [seq, n_heads, head_dim]. neox pairs (i, i + n_rot/2) (qwen2, HF rotate_half);
    otherwise pairs are interleaved (2i, 2i+1) (llama's GGUF order). Dims ≥ n_rot pass through."""
    theta = rope_angles(positions, n_rot, base, factors)[:, None, :]
    cos, sin = np.cos(theta), np.sin(theta)
    out = x.copy()
    half = n_rot // 2
    if neox:
        x0, x1 = x[..., :half], x[..., half:n_rot]
        out[..., :half] = x0 * cos - x1 * sin
        out[..., half:n_rot] = x0 * sin + x1 * cos
    else:
        x0, x1 = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = x0 * cos - x1 * sin
        out[..., 1:n_rot:2] = x0 * sin + x1 * cos
    return out


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def causal_attention(q, k, v, n_rep):
    """q [seq, H, hd], k/v [seq, Hkv, hd]; query head j uses KV head j // n_rep.
    Returns (scores [H, seq, seq] with masked entries 0, softmax likewise, output [seq, H·hd])."""
    seq, n_heads, hd = q.shape
    k_rep = np.repeat(k, n_rep, axis=1)
    v_rep = np.repeat(v, n_rep, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k_rep) / np.sqrt(hd)
    mask = np.tril(np.ones((seq, seq), dtype=bool))[None, :, :]
    masked = np.where(mask, scores, -np.inf)
    probs = np.exp(masked - masked.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    out = np.einsum("hqk,khd->qhd", probs, v_rep).reshape(seq, n_heads * hd)
    return np.where(mask, scores, 0.0), np.where(mask, probs, 0.0), out


def forward(model: "Model | str | Path", tokens, trace: bool = False) -> dict:
    """Runs the prompt through the model. Returns {"logits": float64 [n_tokens, vocab]} and, with
    trace=True, "stages": {(layer, stage): float64 array}, layer None for whole-model stages."""
    if not isinstance(model, Model):
        model = Model(model)
    hp = model.hp
    tokens = np.asarray(list(tokens), dtype=np.int64)
    if tokens.ndim != 1 or len(tokens) == 0:
        raise ValueError("need at least one token")
    if tokens.min() < 0 or tokens.max() >= model.vocab:
        raise ValueError(f"token id out of range [0, {model.vocab})")
    stages: dict = {}

    def keep(layer, name, value):
        if trace:
            stages[(layer, name)] = np.array(value, dtype=np.float64)

    seq = len(tokens)
    hd = hp.head_dim
    q_dim, kv_dim = hp.heads * hd, hp.kv_heads * hd
    positions = np.arange(seq)
    neox = hp.arch == "qwen2"
    rope_factors = model.get("rope_freqs.weight")
    x = model.rows("token_embd.weight", tokens)
    keep(0, "embedding", x)
    for layer in range(hp.layers):
        w = lambda name: model.get(f"blk.{layer}.{name}")  # noqa: E731
        h = rms_norm(x, w("attn_norm.weight"), hp.eps)
        keep(layer, "attn_norm", h)
        q, k, v = h @ w("attn_q.weight").T, h @ w("attn_k.weight").T, h @ w("attn_v.weight").T
        keep(layer, "qkv_matmul", np.concatenate([q, k, v], axis=1))
        biases = [w(f"attn_{p}.bias") for p in "qkv"]
        if any(b is not None for b in biases):
            q, k, v = (t if b is None else t + b for t, b in zip((q, k, v), biases))
            keep(layer, "qkv_bias", np.concatenate([q, k, v], axis=1))
        q = apply_rope(q.reshape(seq, hp.heads, hd), positions, hp.n_rot, hp.rope_base, neox,
                       rope_factors)
        k = apply_rope(k.reshape(seq, hp.kv_heads, hd), positions, hp.n_rot, hp.rope_base, neox,
                       rope_factors)
        keep(layer, "q_post_rope", q.reshape(seq, q_dim))
        keep(layer, "k_post_rope", k.reshape(seq, kv_dim))
        scores, probs, attn = causal_attention(q, k, v.reshape(seq, hp.kv_heads, hd),
                                               hp.heads // hp.kv_heads)  # fmt: skip
        keep(layer, "attn_scores", scores)
        keep(layer, "attn_softmax", probs)
        keep(layer, "attention", attn)
        attn_out = attn @ w("attn_output.weight").T
        if w("attn_output.bias") is not None:
            attn_out = attn_out + w("attn_output.bias")
        keep(layer, "attn_out", attn_out)
        x = x + attn_out
        keep(layer, "post_attn_residual", x)
        h = rms_norm(x, w("ffn_norm.weight"), hp.eps)
        keep(layer, "ffn_norm", h)
        gate = h @ w("ffn_gate.weight").T
        up = h @ w("ffn_up.weight").T
        keep(layer, "ffn_gate", gate)
        keep(layer, "ffn_up", up)
        act = silu(gate)
        keep(layer, "ffn_silu", act)
        swiglu = act * up
        keep(layer, "ffn_swigl", swiglu)
        ffn_out = swiglu @ w("ffn_down.weight").T
        keep(layer, "ffn_out", ffn_out)
        x = x + ffn_out
        keep(layer, "post_ffn_residual", x)
    h = rms_norm(x, model.get("output_norm.weight"), hp.eps)
    keep(None, "final_norm", h)
    head = model.get("output.weight")
    if head is None:
        head = model.get("token_embd.weight")  # tied head
    logits = h @ head.T
    keep(None, "lm_head", logits[-1])
    result = {"logits": logits}
    if trace:
        result["stages"] = stages
    return result


def greedy(model: "Model | str | Path", prompt, n_new: int) -> tuple[list[int], np.ndarray]:
    """Greedy decoding by full recomputation. Returns (generated ids, logits rows [n_new, vocab])
    where row i is the distribution generated token i was chosen from."""
    if not isinstance(model, Model):
        model = Model(model)
    ids = list(prompt)
    rows = []
    for _ in range(n_new):
        row = forward(model, ids)["logits"][-1]
        rows.append(row)
        ids.append(int(np.argmax(row)))
    return ids[len(prompt):], np.array(rows)


def write_aprt(path: Path, layer: int, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    with open(path, "wb") as f:
        f.write(b"APRT" + struct.pack("<II", layer, flat.size))
        f.write(flat.tobytes())


def read_aprt(path: Path) -> tuple[int, np.ndarray]:
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] != b"APRT":
        raise ValueError(f"{path}: not an APRT file")
    layer, count = struct.unpack_from("<II", data, 4)
    if len(data) != 12 + 4 * count:
        raise ValueError(f"{path}: {count} elements declared, {(len(data) - 12) / 4} present")
    return layer, np.frombuffer(data, dtype="<f4", offset=12).copy()


def write_trace(stages: dict, trace_dir: Path) -> None:
    for (layer, name), values in stages.items():
        if layer is None:
            write_aprt(trace_dir / f"{name}.bin", WHOLE_MODEL_LAYER, values)
        else:
            write_aprt(trace_dir / f"layer-{layer}" / f"{name}.bin", layer, values)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model")
    p.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,2,3")
    p.add_argument("--out", help="write float64 logits [n_tokens x vocab] as .npy")
    p.add_argument("--trace-dir", help="write every stage as APRT files under this directory")
    args = p.parse_args(argv)
    try:
        tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
        result = forward(args.model, tokens, trace=bool(args.trace_dir))
    except (ValueError, KeyError, OSError) as e:
        print(f"ref_forward: {e}", file=sys.stderr)
        return 2
    logits = result["logits"]
    if args.out:
        np.save(args.out, logits)
    if args.trace_dir:
        write_trace(result["stages"], Path(args.trace_dir))
    summary = {"tokens": tokens, "argmax": [int(i) for i in logits.argmax(axis=1)],
               "max_abs_logit": float(np.abs(logits).max())}  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
