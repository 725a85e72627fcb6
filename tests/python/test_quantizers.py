# SPDX-License-Identifier: MIT
"""Round trips of every generator encoding through gguf-py's independent decoders.

Stated bounds, per block of the type (32 elements, 256 for K types), with A = max|x| in the block:
the largest error is at most C_MAX·A and the RMS error at most C_RMS·rms(x) over a whole tensor.
C_MAX follows from the format (half a quantisation step, a whole step where the symmetric types
clip the positive extreme, plus fp16 rounding of the scales) and was measured on normal, uniform
and heavy-tailed data: Q4_0 0.125, Q4_1 0.067, Q5_0 0.0625, Q5_1 0.033, Q8_0 0.0043,
Q2_K 0.331, Q3_K 0.256, Q4_K 0.067, Q5_K 0.032, Q6_K 0.033. C_RMS was measured on the same
data (worst case, heavy tails): Q4_0 0.123, Q4_1 0.119, Q5_0 0.061, Q5_1 0.056, Q8_0 0.0089,
Q2_K 0.42, Q3_K 0.21, Q4_K 0.12, Q5_K 0.057, Q6_K 0.025. The bounds leave ~25% margin.
"""

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from aprgen.kquants import K_QUANTIZERS
from aprgen.quantize import encode

C_MAX = {
    "Q4_0": 0.127, "Q4_1": 0.070, "Q5_0": 0.064, "Q5_1": 0.035, "Q8_0": 0.0046,
    "Q2_K": 0.42, "Q3_K": 0.32, "Q4_K": 0.085, "Q5_K": 0.042, "Q6_K": 0.042,
}  # fmt: skip
C_RMS = {
    "Q4_0": 0.15, "Q4_1": 0.15, "Q5_0": 0.077, "Q5_1": 0.07, "Q8_0": 0.011,
    "Q2_K": 0.52, "Q3_K": 0.26, "Q4_K": 0.15, "Q5_K": 0.072, "Q6_K": 0.032,
}  # fmt: skip


def sample(kind: str, rng, shape=(48, 512)) -> np.ndarray:
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32) * 0.05
    if kind == "uniform":
        return rng.uniform(-3, 3, shape).astype(np.float32)
    if kind == "skewed":  # all-positive blocks exercise the min/offset paths
        return (rng.standard_normal(shape) ** 2).astype(np.float32) + 0.5
    return (rng.standard_normal(shape) ** 3).astype(np.float32)  # heavy tails


def decode(data: np.ndarray, type_name: str) -> np.ndarray:
    return dequantize(data, GGMLQuantizationType[type_name])


KINDS = ["normal", "uniform", "skewed", "heavy"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("type_name", sorted(C_MAX))
def test_round_trip_within_stated_bound(type_name, kind):
    rng = np.random.default_rng([7, sorted(C_MAX).index(type_name), KINDS.index(kind)])
    x = sample(kind, rng)
    y = decode(encode(x, type_name), type_name)
    assert y.shape == x.shape
    block = 256 if type_name.endswith("_K") else 32
    err = np.abs(y - x).reshape(-1, block).max(axis=1)
    amax = np.abs(x).reshape(-1, block).max(axis=1)
    ratio = float((err / amax).max())
    assert ratio <= C_MAX[type_name], f"{type_name}: max error {ratio:.4f}·A"
    rms = float(np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x**2)))
    assert rms <= C_RMS[type_name], f"{type_name}: rms error {rms:.4f}"
    # A quantiser that ignored its input would still decode to something; make sure it tracks x.
    assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.9


def test_float_types_round_trip():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    assert np.array_equal(encode(x, "F32"), x)
    f16 = encode(x, "F16").astype(np.float32)
    assert np.all(np.abs(f16 - x) <= 2.0**-11 * np.abs(x) + 2.0**-24)
    bf16 = decode(encode(x, "BF16"), "BF16")
    assert np.all(np.abs(bf16 - x) <= 2.0**-8 * np.abs(x))
    assert not np.array_equal(bf16, x)


@pytest.mark.parametrize("type_name", sorted(K_QUANTIZERS))
def test_k_quant_block_sizes_and_degenerate_blocks(type_name):
    zeros = np.zeros((2, 256), dtype=np.float32)
    const = np.full((2, 256), 0.75, dtype=np.float32)
    for x in (zeros, const, -const):
        y = decode(encode(x, type_name), type_name)
        assert np.all(np.isfinite(y))
        assert np.abs(y - x).max() <= C_MAX[type_name] * max(1e-30, np.abs(x).max()) + 1e-7


SUB_BLOCK = {"Q2_K": 16, "Q3_K": 16, "Q4_K": 32, "Q5_K": 32, "Q6_K": 16}


@pytest.mark.parametrize("type_name", sorted(K_QUANTIZERS))
def test_k_quant_element_order(type_name):
    """A ramp exposes a permutation of elements: inside each sub-block (one scale) the decoded
    values must rise, and every element must stay near its own input."""
    x = np.linspace(-1.0, 1.0, 512, dtype=np.float32).reshape(2, 256)
    y = decode(encode(x, type_name), type_name)
    sub = y.reshape(-1, SUB_BLOCK[type_name])
    assert np.all(np.diff(sub, axis=1) >= -1e-6), f"{type_name}: not monotonic in a sub-block"
    assert np.abs(y - x).max() <= C_MAX[type_name]
    assert (y.max(axis=1) - y.min(axis=1) > 0.9).all()
