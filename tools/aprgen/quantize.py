# SPDX-License-Identifier: MIT
"""Per-tensor type choice (including the Q4_K_M mix) and encoding to GGUF tensor bytes."""

import re

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType
from gguf import quants as gguf_quants

from .kquants import K_QUANTIZERS

FILE_TYPES = [
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M",
]  # fmt: skip

# general.file_type for each --type; a plain K type is written as its "_S" variant.
FILE_TYPE_IDS = {
    "F32": LlamaFileType.ALL_F32, "F16": LlamaFileType.MOSTLY_F16,
    "BF16": LlamaFileType.MOSTLY_BF16, "Q4_0": LlamaFileType.MOSTLY_Q4_0,
    "Q4_1": LlamaFileType.MOSTLY_Q4_1, "Q5_0": LlamaFileType.MOSTLY_Q5_0,
    "Q5_1": LlamaFileType.MOSTLY_Q5_1, "Q8_0": LlamaFileType.MOSTLY_Q8_0,
    "Q2_K": LlamaFileType.MOSTLY_Q2_K, "Q3_K": LlamaFileType.MOSTLY_Q3_K_S,
    "Q4_K": LlamaFileType.MOSTLY_Q4_K_S, "Q5_K": LlamaFileType.MOSTLY_Q5_K_S,
    "Q6_K": LlamaFileType.MOSTLY_Q6_K, "Q4_K_M": LlamaFileType.MOSTLY_Q4_K_M,
}  # fmt: skip

# llama-quantize's substitutes for a K type whose rows are not a multiple of 256 (GGUF-FACTS §6.2).
K_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def use_more_bits(layer: int, n_layers: int) -> bool:
    """The layers on which llama.cpp's Q4_K_M spends Q6_K: the first and last eighth, and every
    third layer in between."""
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2


def q4_k_m_choice(name: str, n_layers: int, tied: bool) -> str:
    """Q4_K_M rule: output.weight Q6_K (also token_embd.weight when it doubles as the tied head),
    attn_v and ffn_down Q6_K on the use_more_bits layers, everything else Q4_K."""
    if name == "output.weight" or (name == "token_embd.weight" and tied):
        return "Q6_K"
    match = re.match(r"blk\.(\d+)\.(attn_v|ffn_down)\.weight$", name)
    if match and use_more_bits(int(match.group(1)), n_layers):
        return "Q6_K"
    return "Q4_K"


def tensor_type(name: str, shape: tuple, file_type: str, n_layers: int, tied: bool) -> str:
    """The ggml type a tensor of numpy shape (..., row) gets in a file of --type file_type."""
    if len(shape) == 1:
        return "F32"  # norms and biases stay F32, as llama.cpp writes them
    wanted = q4_k_m_choice(name, n_layers, tied) if file_type == "Q4_K_M" else file_type
    row = shape[-1]
    if wanted in K_FALLBACK and row % 256 != 0:
        wanted = K_FALLBACK[wanted]
    block = GGML_QUANT_SIZES[GGMLQuantizationType[wanted]][0]
    if row % block != 0:
        wanted = "F16"
    return wanted


def encode(array: np.ndarray, type_name: str) -> np.ndarray:
    """Encodes a float32 array (rows along the last axis) as the bytes or values GGUF stores."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if type_name == "F32":
        return array
    if type_name == "F16":
        return array.astype(np.float16)
    if type_name in K_QUANTIZERS:
        blocks = K_QUANTIZERS[type_name](array.reshape(-1, 256))
        return blocks.reshape(*array.shape[:-1], -1)
    return gguf_quants.quantize(array, GGMLQuantizationType[type_name])


def encoded_nbytes(shape: tuple, type_name: str) -> int:
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    n = int(np.prod(shape))
    return n // block * size
