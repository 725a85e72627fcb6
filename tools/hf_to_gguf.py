# SPDX-License-Identifier: MIT
"""Converts a small Hugging Face Qwen2 or Llama checkpoint to a GGUF F32 file apr can load.

Reads HF_DIR/config.json, the weights (model.safetensors or pytorch_model.bin) and the
byte-level BPE tokenizer in tokenizer.json. Meant for the tiny models of the tracing round-trip
test (tools/hf-roundtrip-test.sh), not as a general converter: F32 only, no sharded checkpoints,
no SentencePiece tokenizers.

Llama's Q and K projection rows are reordered for GGUF's interleaved rotary layout (pairs
(2i, 2i+1) instead of transformers' (i, i + head_dim/2)), as llama.cpp's converter does; qwen2
keeps transformers' layout because GGUF runs it with the half-split ("NEOX") rotation.

Example:
  hf_to_gguf.py HF_DIR --out model.gguf
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

ARCHS = ("qwen2", "llama")
PRE_TOKENIZER = {"qwen2": "qwen2", "llama": "llama-bpe"}


def load_state_dict(model_dir: Path) -> dict[str, np.ndarray]:
    st = model_dir / "model.safetensors"
    if st.exists():
        from safetensors.numpy import load_file

        return {k: np.asarray(v, dtype=np.float32) for k, v in load_file(str(st)).items()}
    pt = model_dir / "pytorch_model.bin"
    if pt.exists():
        import torch

        sd = torch.load(str(pt), map_location="cpu")
        return {k: v.detach().to(torch.float32).numpy() for k, v in sd.items()}
    raise SystemExit(f"hf_to_gguf: {model_dir}: no model.safetensors or pytorch_model.bin")


def interleave_rotary_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorders each head's output rows from [first halves | second halves] to interleaved pairs.

    Row (h, i) and row (h, i + d/2) of transformers' layout become rows (h, 2i) and (h, 2i + 1).
    """
    rows = w.shape[0]
    head_dim = rows // n_heads
    return (w.reshape(n_heads, 2, head_dim // 2, *w.shape[1:])
             .swapaxes(1, 2)
             .reshape(w.shape))  # fmt: skip


def read_tokenizer(model_dir: Path, vocab_size: int):
    """(tokens, token types, merges, special ids) from a byte-level BPE tokenizer.json, padded to
    vocab_size with unused control tokens."""
    path = model_dir / "tokenizer.json"
    if not path.exists():
        raise SystemExit(f"hf_to_gguf: {path} is missing (a byte-level BPE tokenizer is needed)")
    tj = json.loads(path.read_text(encoding="utf-8"))
    model = tj.get("model", {})
    if model.get("type") != "BPE":
        raise SystemExit(f"hf_to_gguf: {path}: tokenizer model {model.get('type')!r} is not BPE")
    by_id: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    special: dict[str, int] = {}
    for added in tj.get("added_tokens", []):
        by_id[int(added["id"])] = added["content"]
        if added.get("special"):
            special[added["content"]] = int(added["id"])
    if max(by_id) >= vocab_size:
        raise SystemExit(f"hf_to_gguf: tokenizer id {max(by_id)} >= vocab_size {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(3 if by_id[i] in special else 1)  # control, normal
        else:
            tokens.append(f"[PAD{i}]")
            types.append(5)  # unused
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokens, types, merges, special


def tensor_map(cfg: dict, arch: str, sd: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    out = [("token_embd.weight", sd["model.embed_tokens.weight"]),
           ("output_norm.weight", sd["model.norm.weight"])]  # fmt: skip
    tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in sd
    if not tied:
        out.append(("output.weight", sd["lm_head.weight"]))
    names = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "self_attn.q_proj.bias": "attn_q.bias",
        "self_attn.k_proj.bias": "attn_k.bias",
        "self_attn.v_proj.bias": "attn_v.bias",
        "self_attn.o_proj.bias": "attn_output.bias",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for layer in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            key = f"model.layers.{layer}.{hf}"
            if key not in sd:
                continue
            w = sd[key]
            if arch == "llama" and hf.startswith(("self_attn.q_proj", "self_attn.k_proj")):
                w = interleave_rotary_rows(w, n_head if "q_proj" in hf else n_kv)
            out.append((f"blk.{layer}.{gg}", w))
    return out


def convert(model_dir: Path, out: Path) -> None:
    cfg = json.loads((model_dir / "config.json").read_text())
    arch = cfg.get("model_type")
    if arch not in ARCHS:
        raise SystemExit(f"hf_to_gguf: model_type {arch!r} is not one of {', '.join(ARCHS)}")
    sd = load_state_dict(model_dir)
    n_head = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    vocab = cfg["vocab_size"]
    tokens, types, merges, special = read_tokenizer(model_dir, vocab)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        w = GGUFWriter(str(tmp), arch)
        w.add_string("general.type", "model")
        w.add_string("general.name", model_dir.name)
        w.add_uint32("general.file_type", 0)  # all F32
        w.add_uint32(f"{arch}.context_length", cfg.get("max_position_embeddings", 2048))
        w.add_uint32(f"{arch}.embedding_length", cfg["hidden_size"])
        w.add_uint32(f"{arch}.block_count", cfg["num_hidden_layers"])
        w.add_uint32(f"{arch}.feed_forward_length", cfg["intermediate_size"])
        w.add_uint32(f"{arch}.attention.head_count", n_head)
        w.add_uint32(f"{arch}.attention.head_count_kv", cfg.get("num_key_value_heads", n_head))
        w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", cfg.get("rms_norm_eps", 1e-6))
        w.add_uint32(f"{arch}.rope.dimension_count", head_dim)
        w.add_float32(f"{arch}.rope.freq_base", float(cfg.get("rope_theta", 10000.0)))
        w.add_uint32(f"{arch}.vocab_size", vocab)
        if cfg.get("head_dim") and cfg["head_dim"] * n_head != cfg["hidden_size"]:
            w.add_uint32(f"{arch}.attention.key_length", head_dim)
            w.add_uint32(f"{arch}.attention.value_length", head_dim)

        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_string("tokenizer.ggml.pre", PRE_TOKENIZER[arch])
        w.add_array("tokenizer.ggml.tokens", tokens)
        w.add_array("tokenizer.ggml.token_type", types)
        w.add_array("tokenizer.ggml.merges", merges)
        bos = cfg.get("bos_token_id")
        eos = cfg.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0]
        fallback = next(iter(special.values()), 0)
        w.add_uint32("tokenizer.ggml.bos_token_id", bos if bos is not None else fallback)
        w.add_uint32("tokenizer.ggml.eos_token_id", eos if eos is not None else fallback)
        w.add_bool("tokenizer.ggml.add_bos_token", False)

        for name, value in tensor_map(cfg, arch, sd):
            w.add_tensor(name, np.ascontiguousarray(value, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model_dir", type=Path, help="Hugging Face model directory")
    p.add_argument("--out", type=Path, required=True, help="GGUF file to write")
    args = p.parse_args(argv)
    try:
        convert(args.model_dir, args.out)
    except (OSError, KeyError, ValueError) as e:
        print(f"hf_to_gguf: {args.model_dir}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
