# SPDX-License-Identifier: MIT
"""Writes a model as GGUF: metadata, tokenizer, then tensors generated one at a time."""

import os
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter

from .config import ModelConfig
from .quantize import FILE_TYPE_IDS, encode, encoded_nbytes, tensor_type
from .vocab_gpt2 import Vocab, build_gpt2_vocab
from .vocab_spm import build_spm_vocab
from .weights import generate, tensor_specs


def build_vocab(cfg: ModelConfig) -> Vocab:
    return build_gpt2_vocab(cfg.vocab) if cfg.tokenizer == "gpt2" else build_spm_vocab(cfg.vocab)


def _add_model_metadata(w: GGUFWriter, cfg: ModelConfig) -> None:
    a = cfg.arch
    w.add_string("general.type", "model")
    w.add_string("general.name", f"apr-test-{a}-{cfg.preset}-{cfg.file_type.lower()}")
    w.add_uint32("general.file_type", int(FILE_TYPE_IDS[cfg.file_type]))
    w.add_uint32("general.quantization_version", 2)
    w.add_uint32(f"{a}.context_length", cfg.ctx)
    w.add_uint32(f"{a}.embedding_length", cfg.hidden)
    w.add_uint32(f"{a}.block_count", cfg.layers)
    w.add_uint32(f"{a}.feed_forward_length", cfg.ffn)
    w.add_uint32(f"{a}.attention.head_count", cfg.heads)
    w.add_uint32(f"{a}.attention.head_count_kv", cfg.kv_heads)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", cfg.eps)
    w.add_uint32(f"{a}.rope.dimension_count", cfg.head_dim)
    w.add_float32(f"{a}.rope.freq_base", cfg.rope_base)
    w.add_uint32(f"{a}.vocab_size", cfg.vocab)


def _add_tokenizer(w: GGUFWriter, cfg: ModelConfig, vocab: Vocab) -> None:
    if cfg.tokenizer == "gpt2":
        eot = vocab.special_ids["<|endoftext|>"]
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_string("tokenizer.ggml.pre", "qwen2")
        w.add_array("tokenizer.ggml.tokens", vocab.tokens)
        w.add_array("tokenizer.ggml.token_type", vocab.token_types)
        w.add_array("tokenizer.ggml.scores", vocab.scores)
        w.add_array("tokenizer.ggml.merges", vocab.merges)
        w.add_uint32("tokenizer.ggml.bos_token_id", eot)
        w.add_uint32("tokenizer.ggml.eos_token_id", eot)
        w.add_uint32("tokenizer.ggml.padding_token_id", eot)
        w.add_bool("tokenizer.ggml.add_bos_token", False)
    else:
        w.add_string("tokenizer.ggml.model", "llama")
        w.add_array("tokenizer.ggml.tokens", vocab.tokens)
        w.add_array("tokenizer.ggml.scores", vocab.scores)
        w.add_array("tokenizer.ggml.token_type", vocab.token_types)
        w.add_uint32("tokenizer.ggml.bos_token_id", vocab.special_ids["<s>"])
        w.add_uint32("tokenizer.ggml.eos_token_id", vocab.special_ids["</s>"])
        w.add_uint32("tokenizer.ggml.unknown_token_id", vocab.special_ids["<unk>"])
        w.add_bool("tokenizer.ggml.add_bos_token", True)
        w.add_bool("tokenizer.ggml.add_eos_token", False)
        w.add_bool("tokenizer.ggml.add_space_prefix", True)


def _info_shape_and_dtype(shape: tuple, type_name: str):
    """GGUFWriter takes plain float arrays as they are and raw quantized data as byte rows."""
    if type_name == "F32":
        return shape, np.dtype(np.float32), None
    if type_name == "F16":
        return shape, np.dtype(np.float16), None
    qtype = GGMLQuantizationType[type_name]
    row_bytes = encoded_nbytes((shape[-1],), type_name)
    return (*shape[:-1], row_bytes), np.dtype(np.uint8), qtype


def tensor_types(cfg: ModelConfig) -> dict[str, str]:
    return {
        s.name: tensor_type(s.name, s.shape, cfg.file_type, cfg.layers, cfg.tied)
        for s in tensor_specs(cfg)
    }


def write_model(cfg: ModelConfig, out: str | os.PathLike) -> None:
    """Writes atomically: the file appears under its name only once it is complete."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    specs = tensor_specs(cfg)
    types = tensor_types(cfg)
    try:
        w = GGUFWriter(tmp, cfg.arch)
        _add_model_metadata(w, cfg)
        _add_tokenizer(w, cfg, build_vocab(cfg))
        for spec in specs:
            info_shape, dtype, raw = _info_shape_and_dtype(spec.shape, types[spec.name])
            nbytes = encoded_nbytes(spec.shape, types[spec.name])
            w.add_tensor_info(spec.name, info_shape, dtype, nbytes, raw_dtype=raw)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for spec in specs:
            data = encode(generate(spec, cfg.seed), types[spec.name])
            w.write_tensor_data(data)
        w.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
