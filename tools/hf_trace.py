# SPDX-License-Identifier: MIT
"""Traces a Hugging Face transformers Qwen2 or Llama model into an apr trace directory.

Runs one forward pass on the CPU with forward hooks and writes the same stages, in the same
APRT layout, as `apr trace --save-tensor all` (DIR/layer-N/<stage>.bin, DIR/<stage>.bin,
DIR/manifest.json), so any apr backend can be bisected against transformers:

  hf_trace.py --model HF_DIR --tokens 1,17,250 --out ref-trace
  apr bisect model.gguf --backend-a cuda --reference ref-trace

Every stage is what transformers itself computes, taken from its modules; the only values
computed here are the ones its attention never materialises, using its own functions: the bias-free
Q/K/V projections (F.linear without the bias), Q and K after rotary embedding
(apply_rotary_pos_emb with the model's rotary module) and the scaled scores before the softmax.
For llama the Q and K columns are put in GGUF's interleaved rotary order, the order apr's llama
weights have after tools/hf_to_gguf.py (or llama.cpp's converter).

Needs torch and transformers (not part of the default environment).
"""

import argparse
import hashlib
import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np

WHOLE_MODEL_LAYER = 0xFFFFFFFF
PER_LAYER_STAGES = [
    "embedding", "attn_norm", "qkv_matmul", "qkv_bias", "q_post_rope", "k_post_rope",
    "attn_scores", "attn_softmax", "attention", "attn_out", "post_attn_residual", "ffn_norm",
    "ffn_gate", "ffn_up", "ffn_silu", "ffn_swigl", "ffn_out", "post_ffn_residual",
]  # fmt: skip
WHOLE_MODEL_STAGES = ["final_norm", "lm_head"]


def write_file_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def aprt_bytes(layer: int, values: np.ndarray) -> bytes:
    flat = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    header = b"APRT" + layer.to_bytes(4, "little") + flat.size.to_bytes(4, "little")
    return header + flat.tobytes()


def gguf_rotary_order(n_heads: int, head_dim: int) -> np.ndarray:
    """Column permutation from transformers' half-split head layout to GGUF's interleaved one:
    new column (h, 2i) is old (h, i), new (h, 2i + 1) is old (h, i + head_dim/2)."""
    idx = np.arange(n_heads * head_dim).reshape(n_heads, 2, head_dim // 2)
    return idx.swapaxes(1, 2).reshape(-1)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_file(model_dir: Path) -> Path | None:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / name).exists():
            return model_dir / name
    return None


def trace(model_dir: Path, token_ids: list[int], dtype_name: str):
    """{(layer, stage): np.ndarray} for one forward pass; layer None for whole-model stages."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    dtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=dtype,
                                                 attn_implementation="eager")
    model.eval()
    arch = model.config.model_type
    if arch not in ("qwen2", "llama"):
        raise SystemExit(f"hf_trace: model_type {arch!r} is not qwen2 or llama")
    modeling = importlib.import_module(type(model).__module__)
    cfg = model.config
    n_head = cfg.num_attention_heads
    n_kv = getattr(cfg, "num_key_value_heads", n_head) or n_head
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    q_order = gguf_rotary_order(n_head, head_dim) if arch == "llama" else None
    k_order = gguf_rotary_order(n_kv, head_dim) if arch == "llama" else None

    captured: dict = {}
    hooks = []

    def keep(key):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            captured[key] = out.detach()
        return hook

    def keep_input(key):
        def hook(_module, inputs):
            captured[key] = inputs[0].detach()
        return hook

    def keep_io(key):
        def hook(_module, inputs, output):
            captured[key] = (inputs[0].detach(), output.detach())
        return hook

    base = model.model
    hooks.append(base.embed_tokens.register_forward_hook(keep("embed")))
    hooks.append(base.norm.register_forward_hook(keep("final_norm")))
    for i, layer in enumerate(base.layers):
        attn, mlp = layer.self_attn, layer.mlp
        hooks += [
            layer.input_layernorm.register_forward_hook(keep((i, "attn_norm"))),
            attn.q_proj.register_forward_hook(keep_io((i, "q"))),
            attn.k_proj.register_forward_hook(keep_io((i, "k"))),
            attn.v_proj.register_forward_hook(keep_io((i, "v"))),
            attn.o_proj.register_forward_pre_hook(keep_input((i, "attention"))),
            attn.o_proj.register_forward_hook(keep((i, "attn_out"))),
            layer.post_attention_layernorm.register_forward_pre_hook(
                keep_input((i, "post_attn_residual"))),
            layer.post_attention_layernorm.register_forward_hook(keep((i, "ffn_norm"))),
            mlp.gate_proj.register_forward_hook(keep((i, "ffn_gate"))),
            mlp.up_proj.register_forward_hook(keep((i, "ffn_up"))),
            mlp.down_proj.register_forward_pre_hook(keep_input((i, "ffn_swigl"))),
            mlp.down_proj.register_forward_hook(keep((i, "ffn_out"))),
            layer.register_forward_hook(keep((i, "post_ffn_residual"))),
        ]  # fmt: skip

    ids = torch.tensor([token_ids], dtype=torch.long)
    positions = torch.arange(len(token_ids), dtype=torch.long)[None, :]
    with torch.no_grad():
        out = model(ids, output_attentions=True, use_cache=False)
    for h in hooks:
        h.remove()

    seq = len(token_ids)
    stages: dict = {}

    def np2(t):
        return t.detach().to(torch.float64).numpy()

    stages[(0, "embedding")] = np2(captured["embed"][0])
    with torch.no_grad():
        for i, layer in enumerate(base.layers):
            attn, mlp = layer.self_attn, layer.mlp
            stages[(i, "attn_norm")] = np2(captured[(i, "attn_norm")][0])
            proj = {}
            for name, lin in (("q", attn.q_proj), ("k", attn.k_proj), ("v", attn.v_proj)):
                x, y = captured[(i, name)]
                proj[name] = (F.linear(x, lin.weight)[0], y[0])  # (before bias, after bias)
            has_bias = attn.q_proj.bias is not None

            def gguf_cols(name, t):
                order = {"q": q_order, "k": k_order}.get(name)
                return t if order is None else t[:, torch.as_tensor(order)]

            stages[(i, "qkv_matmul")] = np2(torch.cat(
                [gguf_cols(n, proj[n][0]) for n in ("q", "k", "v")], dim=-1))
            if has_bias:
                stages[(i, "qkv_bias")] = np2(torch.cat(
                    [gguf_cols(n, proj[n][1]) for n in ("q", "k", "v")], dim=-1))

            q = proj["q"][1].view(1, seq, n_head, head_dim).transpose(1, 2)
            k = proj["k"][1].view(1, seq, n_kv, head_dim).transpose(1, 2)
            v = proj["v"][1].view(1, seq, n_kv, head_dim).transpose(1, 2)
            rotary = getattr(base, "rotary_emb", None) or getattr(attn, "rotary_emb")
            cos, sin = rotary(v, positions)
            q_rot, k_rot = modeling.apply_rotary_pos_emb(q, k, cos, sin)
            stages[(i, "q_post_rope")] = np2(gguf_cols(
                "q", q_rot.transpose(1, 2).reshape(seq, n_head * head_dim)))
            stages[(i, "k_post_rope")] = np2(gguf_cols(
                "k", k_rot.transpose(1, 2).reshape(seq, n_kv * head_dim)))

            k_all = modeling.repeat_kv(k_rot, n_head // n_kv)
            scores = torch.matmul(q_rot, k_all.transpose(2, 3))[0] / (head_dim ** 0.5)
            causal = torch.ones(seq, seq, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(causal, 0.0)
            stages[(i, "attn_scores")] = scores.to(torch.float64).numpy()
            stages[(i, "attn_softmax")] = out.attentions[i][0].to(torch.float64).numpy()

            stages[(i, "attention")] = np2(captured[(i, "attention")][0])
            stages[(i, "attn_out")] = np2(captured[(i, "attn_out")][0])
            stages[(i, "post_attn_residual")] = np2(captured[(i, "post_attn_residual")][0])
            stages[(i, "ffn_norm")] = np2(captured[(i, "ffn_norm")][0])
            gate = captured[(i, "ffn_gate")]
            stages[(i, "ffn_gate")] = np2(gate[0])
            stages[(i, "ffn_up")] = np2(captured[(i, "ffn_up")][0])
            stages[(i, "ffn_silu")] = np2(mlp.act_fn(gate)[0])
            stages[(i, "ffn_swigl")] = np2(captured[(i, "ffn_swigl")][0])
            stages[(i, "ffn_out")] = np2(captured[(i, "ffn_out")][0])
            stages[(i, "post_ffn_residual")] = np2(captured[(i, "post_ffn_residual")][0])
    stages[(None, "final_norm")] = np2(captured["final_norm"][0])
    stages[(None, "lm_head")] = out.logits[0, -1].to(torch.float64).numpy()
    return arch, stages


def forward_key(item):
    (layer, stage), _ = item
    if layer is None:
        return (1 << 32, WHOLE_MODEL_STAGES.index(stage))
    return (layer, PER_LAYER_STAGES.index(stage))


def write_trace(out_dir: Path, model_dir: Path, arch: str, stages: dict, token_ids, prompt):
    import transformers

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists():
        manifest_path.unlink()  # never leave an old manifest describing new files
    files = []
    for (layer, stage), values in sorted(stages.items(), key=forward_key):
        rel = f"{stage}.bin" if layer is None else f"layer-{layer}/{stage}.bin"
        write_file_atomically(out_dir / rel,
                              aprt_bytes(WHOLE_MODEL_LAYER if layer is None else layer, values))
        files.append({"path": rel, "stage": stage, "layer": layer,
                      "shape": list(values.shape), "dtype": "f32"})  # fmt: skip
    weights = weights_file(model_dir)
    manifest = {
        "format": "apr-trace-manifest-v1",
        "model": {"path": str(model_dir.resolve()),
                  "sha256": sha256_of(weights) if weights else "",
                  "architecture": arch},
        "backend": {"name": "transformers", "plugin_version": transformers.__version__},
        "prompt": prompt,
        "token_ids": list(token_ids),
        "files": files,
    }  # fmt: skip
    write_file_atomically(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="Hugging Face model directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", help="comma-separated token ids")
    src.add_argument("--prompt", help="text, encoded with the model's own tokenizer")
    p.add_argument("--out", type=Path, required=True, help="trace directory to write")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="precision transformers computes in (default float32)")
    args = p.parse_args(argv)
    try:
        if args.tokens is not None:
            token_ids = [int(t) for t in args.tokens.split(",")]
            if not token_ids or min(token_ids) < 0:
                raise ValueError("--tokens needs non-negative ids")
        else:
            from transformers import AutoTokenizer

            token_ids = AutoTokenizer.from_pretrained(str(args.model))(args.prompt)["input_ids"]
        arch, stages = trace(args.model, token_ids, args.dtype)
        files = write_trace(args.out, args.model, arch, stages, token_ids, args.prompt)
    except (OSError, ValueError) as e:
        print(f"hf_trace: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} stage files and manifest.json to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
