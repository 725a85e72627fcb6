# SPDX-License-Identifier: MIT
"""The tensor list of a model and its random weights.

Every tensor draws from its own generator seeded by (seed, crc32(name)), so a tensor's values do
not depend on which other tensors exist or in which order they are produced. Scales keep the
activations O(1) through the layers: matrices N(0, 1/fan_in), norm weights U(0.9, 1.1), biases
N(0, 0.1²), embeddings N(0, 1).
"""

import zlib
from dataclasses import dataclass

import numpy as np

from .config import ModelConfig


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # numpy order: (rows, row_length); GGUF ne is the reverse
    kind: str  # "embedding", "matrix", "norm" or "bias"


def tensor_specs(cfg: ModelConfig) -> list[TensorSpec]:
    h, q, kv, f = cfg.hidden, cfg.q_dim, cfg.kv_dim, cfg.ffn
    specs = [TensorSpec("token_embd.weight", (cfg.vocab, h), "embedding")]
    with_bias = cfg.arch == "qwen2"
    for i in range(cfg.layers):
        p = f"blk.{i}."
        specs.append(TensorSpec(p + "attn_norm.weight", (h,), "norm"))
        for part, rows in (("q", q), ("k", kv), ("v", kv)):
            specs.append(TensorSpec(p + f"attn_{part}.weight", (rows, h), "matrix"))
            if with_bias:
                specs.append(TensorSpec(p + f"attn_{part}.bias", (rows,), "bias"))
        specs.append(TensorSpec(p + "attn_output.weight", (h, q), "matrix"))
        specs.append(TensorSpec(p + "ffn_norm.weight", (h,), "norm"))
        specs.append(TensorSpec(p + "ffn_gate.weight", (f, h), "matrix"))
        specs.append(TensorSpec(p + "ffn_up.weight", (f, h), "matrix"))
        specs.append(TensorSpec(p + "ffn_down.weight", (h, f), "matrix"))
    specs.append(TensorSpec("output_norm.weight", (h,), "norm"))
    if cfg.rope_freqs:
        specs.append(TensorSpec("rope_freqs.weight", (cfg.head_dim // 2,), "rope_freqs"))
    if not cfg.tied:
        specs.append(TensorSpec("output.weight", (cfg.vocab, h), "matrix"))
    return specs


def generate(spec: TensorSpec, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
    if spec.kind == "norm":
        return rng.uniform(0.9, 1.1, size=spec.shape).astype(np.float32)
    if spec.kind == "rope_freqs":
        # Llama 3.1's shape: high-frequency pairs kept (1), low ones slowed by up to 8.
        ramp = np.linspace(0.0, 1.0, spec.shape[0], dtype=np.float64) ** 2
        return (1.0 + 7.0 * ramp).astype(np.float32)
    values = rng.standard_normal(size=spec.shape, dtype=np.float32)
    if spec.kind == "bias":
        values *= np.float32(0.1)
    elif spec.kind == "matrix":
        values *= np.float32(1.0 / np.sqrt(spec.shape[-1]))
    return values
