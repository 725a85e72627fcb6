# SPDX-License-Identifier: MIT
"""Numpy encoders for the K-quant block formats (Q2_K .. Q6_K), which gguf-py cannot quantize.

Each encoder takes float32 blocks of shape (n, 256) and returns uint8 blocks of the ggml layout
(GGUF-FACTS §2.4). The encodings are valid and reasonable (per-sub-block min/max or absmax
scales, nearest rounding), not the error-minimising searches of llama.cpp.
"""

import numpy as np

QK_K = 256


def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16)


def _safe_inverse(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(x == 0, 0.0, 1.0 / np.where(x == 0, 1.0, x)).astype(np.float32)


def _affine_subblocks(blocks, sub, qmax, scale_bits):
    """Shared min/scale quantisation of Q2_K, Q4_K, Q5_K: y = d·sc·q − dmin·m."""
    n = blocks.shape[0]
    x = blocks.reshape(n, QK_K // sub, sub).astype(np.float32)
    # The format stores a non-negative min offset, so the range always includes zero.
    lo = np.minimum(x.min(axis=-1), 0.0)
    hi = np.maximum(x.max(axis=-1), 0.0)
    scale = (hi - lo) / qmax
    offset = -lo
    smax = (1 << scale_bits) - 1
    d = _f16(scale.max(axis=-1) / smax)
    dmin = _f16(offset.max(axis=-1) / smax)
    d32 = d.astype(np.float32)[:, None]
    dmin32 = dmin.astype(np.float32)[:, None]
    sc = np.clip(np.rint(scale * _safe_inverse(d32)), 0, smax).astype(np.uint8)
    mn = np.clip(np.rint(offset * _safe_inverse(dmin32)), 0, smax).astype(np.uint8)
    step = d32 * sc.astype(np.float32)
    shift = dmin32 * mn.astype(np.float32)
    q = np.rint((x + shift[..., None]) * _safe_inverse(step)[..., None])
    q = np.clip(q, 0, qmax).astype(np.uint8).reshape(n, QK_K)
    return d, dmin, sc, mn, q


def _symmetric_subblocks(blocks, sub, qneg, scale_limit):
    """Shared absmax quantisation of Q3_K, Q6_K: y = d·sc·q with q in [−qneg, qneg−1]."""
    n = blocks.shape[0]
    x = blocks.reshape(n, QK_K // sub, sub).astype(np.float32)
    idx = np.abs(x).argmax(axis=-1)[..., None]
    # The largest-magnitude value maps to −qneg exactly, as Q4_0 does, to use the full range.
    scale = -np.take_along_axis(x, idx, axis=-1)[..., 0] / qneg
    d = _f16(np.abs(scale).max(axis=-1) / scale_limit)
    d32 = d.astype(np.float32)[:, None]
    sc = np.clip(np.rint(scale * _safe_inverse(d32)), -scale_limit - 1, scale_limit)
    step = d32 * sc.astype(np.float32)
    q = np.rint(x * _safe_inverse(step)[..., None])
    q = np.clip(q, -qneg, qneg - 1).astype(np.int16).reshape(n, QK_K)
    return d, sc.astype(np.int16), q


def _pack_2bit(q: np.ndarray) -> np.ndarray:
    """2-bit values of 256 elements into 64 bytes: byte 32h+l holds element 128h+32s+l at bit
    2s."""
    n = q.shape[0]
    q = q.reshape(n, 2, 4, 32).astype(np.uint8)
    out = np.zeros((n, 2, 32), dtype=np.uint8)
    for s in range(4):
        out |= (q[:, :, s, :] & 3) << (2 * s)
    return out.reshape(n, 64)


def _pack_bitplane(bits: np.ndarray) -> np.ndarray:
    """One bit per element into 32 bytes: bit k of byte l is element 32k+l."""
    n = bits.shape[0]
    bits = bits.reshape(n, 8, 32).astype(np.uint8)
    out = np.zeros((n, 32), dtype=np.uint8)
    for k in range(8):
        out |= (bits[:, k, :] & 1) << k
    return out


def _pack_nibbles_k(q: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K nibbles: byte 32c+l holds element 64c+l (low) and 64c+32+l (high)."""
    n = q.shape[0]
    q = q.reshape(n, 4, 2, 32).astype(np.uint8)
    return ((q[:, :, 0, :] & 15) | ((q[:, :, 1, :] & 15) << 4)).reshape(n, 128)


def _pack_scales_k4(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Eight 6-bit scales and mins into the 12-byte get_scale_min_k4 layout."""
    sc = sc.astype(np.uint8)
    mn = mn.astype(np.uint8)
    out = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (mn[:, 0:4] & 63) | ((mn[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 15) | ((mn[:, 4:8] & 15) << 4)
    return out


def _bytes_f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).reshape(-1, 1).view(np.uint8)


def quantize_q2_k(blocks: np.ndarray) -> np.ndarray:
    d, dmin, sc, mn, q = _affine_subblocks(blocks, 16, 3, 4)
    scales = (sc & 15) | ((mn & 15) << 4)
    return np.concatenate([scales, _pack_2bit(q), _bytes_f16(d), _bytes_f16(dmin)], axis=1)


def quantize_q3_k(blocks: np.ndarray) -> np.ndarray:
    d, sc, q = _symmetric_subblocks(blocks, 16, 4, 31)
    u = (q + 4).astype(np.uint8)  # 0..7; a set high bit means "no −4 offset"
    hmask = _pack_bitplane(u >> 2)
    qs = _pack_2bit(u & 3)
    us = (sc + 32).astype(np.uint8)  # 6-bit biased scales
    scales = np.zeros((us.shape[0], 12), dtype=np.uint8)
    scales[:, 0:8] = (us[:, 0:8] & 15) | ((us[:, 8:16] & 15) << 4)
    for k in range(4):
        for j in range(4):
            scales[:, 8 + k] |= ((us[:, k + 4 * j] >> 4) & 3) << (2 * j)
    return np.concatenate([hmask, qs, scales, _bytes_f16(d)], axis=1)


def quantize_q4_k(blocks: np.ndarray) -> np.ndarray:
    d, dmin, sc, mn, q = _affine_subblocks(blocks, 32, 15, 6)
    return np.concatenate(
        [_bytes_f16(d), _bytes_f16(dmin), _pack_scales_k4(sc, mn), _pack_nibbles_k(q)], axis=1
    )


def quantize_q5_k(blocks: np.ndarray) -> np.ndarray:
    d, dmin, sc, mn, q = _affine_subblocks(blocks, 32, 31, 6)
    return np.concatenate(
        [
            _bytes_f16(d),
            _bytes_f16(dmin),
            _pack_scales_k4(sc, mn),
            _pack_bitplane(q >> 4),
            _pack_nibbles_k(q),
        ],
        axis=1,
    )


def quantize_q6_k(blocks: np.ndarray) -> np.ndarray:
    d, sc, q = _symmetric_subblocks(blocks, 16, 32, 127)
    n = q.shape[0]
    u = (q + 32).astype(np.uint8).reshape(n, 2, 4, 32)  # [half, quarter, lane]
    ql = np.zeros((n, 2, 64), dtype=np.uint8)
    ql[:, :, 0:32] = (u[:, :, 0, :] & 15) | ((u[:, :, 2, :] & 15) << 4)
    ql[:, :, 32:64] = (u[:, :, 1, :] & 15) | ((u[:, :, 3, :] & 15) << 4)
    qh = np.zeros((n, 2, 32), dtype=np.uint8)
    for k in range(4):
        qh |= (u[:, :, k, :] >> 4) << (2 * k)
    scales = sc.astype(np.int8).view(np.uint8)
    return np.concatenate([ql.reshape(n, 128), qh.reshape(n, 64), scales, _bytes_f16(d)], axis=1)


K_QUANTIZERS = {
    "Q2_K": quantize_q2_k,
    "Q3_K": quantize_q3_k,
    "Q4_K": quantize_q4_k,
    "Q5_K": quantize_q5_k,
    "Q6_K": quantize_q6_k,
}
