# SPDX-License-Identifier: MIT
"""Traces a Hugging Face transformers model (Qwen2, Llama, Qwen3, Gemma 2, Gemma 3 text, Phi-3)
into an apr trace directory.

Runs one forward pass on the CPU with forward hooks and writes the same stages, in the same
APRT layout, as `apr trace --save-tensor all` (DIR/layer-N/<stage>.bin, DIR/<stage>.bin,
DIR/manifest.json), so any apr backend can be bisected against transformers:

  hf_trace.py --model HF_DIR --tokens 1,17,250 --out ref-trace [--dtype float64]
  apr bisect model.gguf --backend-a cuda --reference ref-trace

Every stage is what transformers itself computes, taken from its modules; the only values
computed here are the ones its attention never materialises, using its own functions: the bias-free
Q/K/V projections (F.linear without the bias) and the scaled (gemma2: soft-capped) scores before
the softmax, masked entries (causal, and outside a sliding window) 0 as apr traces them. Q and K
after RoPE are recorded from the model's own apply_rotary_pos_emb. The families' own stages:
q_norm/k_norm (qwen3, gemma3: the per-head norms' outputs), attn_post_norm and ffn_post_norm
(gemma's sandwich norms), ffn_gelu/ffn_geglu in place of ffn_silu/ffn_swigl (gemma); phi3's fused
qkv_proj and gate_up_proj (gate first) give qkv_matmul, ffn_gate and ffn_up. The embedding is the
first layer's input (gemma scales it by sqrt(hidden)).
For llama the Q and K columns are put in GGUF's interleaved rotary order, the order apr's llama
weights have after tools/hf_to_gguf.py (or llama.cpp's converter).

With --dtype float64 the model runs in float64 throughout: transformers' float32 RMSNorm, rotary
tables and eager softmax are run in float64 too (float64_islands).

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
# In forward order (plugin-api/include/apr/kit/names.hpp, kForwardOrder); a model has a subset.
PER_LAYER_STAGES = [
    "embedding", "attn_norm", "qkv_matmul", "qkv_bias", "q_norm", "k_norm", "q_post_rope",
    "k_post_rope", "attn_scores", "attn_softmax", "attention", "attn_out", "attn_post_norm",
    "post_attn_residual", "ffn_norm", "ffn_gate", "ffn_up", "ffn_silu", "ffn_gelu", "ffn_swigl",
    "ffn_geglu", "ffn_out", "ffn_post_norm", "post_ffn_residual",
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


# apr's architecture name for each transformers model_type hf_trace knows.
APR_ARCH = {"qwen2": "qwen2", "llama": "llama", "qwen3": "qwen3", "gemma2": "gemma2",
            "gemma3_text": "gemma3", "phi3": "phi3"}


def float64_islands(model) -> None:
    """Makes a float64 model float64 throughout. transformers computes three things in float32
    whatever the model's dtype: RMSNorm (x.float() / .to(torch.float32)), the rotary tables
    (inv_freq and the angles in float32) and the eager attention's softmax (dtype=torch.float32).
    This replaces the norms' and rotary modules' forward with the same formulas in float64 and
    wraps the softmax the model's module calls (see softmax_in_input_dtype). Only default RoPE is
    recomputed; a model with scaled RoPE keeps transformers' tables (and says so)."""
    import types

    import torch

    cfg = model.config

    def norm_forward(gemma):
        def forward(self, x):
            eps = getattr(self, "eps", None) or getattr(self, "variance_epsilon")
            x64 = x.to(torch.float64)
            y = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps)
            w = self.weight.to(torch.float64)
            return (y * (1.0 + w) if gemma else y * w).to(x.dtype)
        return forward

    def rope_params(layer_type):
        params = getattr(cfg, "rope_parameters", None) or {}
        if layer_type is not None and layer_type in params:
            params = params[layer_type]
        theta = params.get("rope_theta")
        if theta is None:  # transformers 4.x keeps them on the config
            theta = (getattr(cfg, "rope_local_base_freq", None)
                     if layer_type == "sliding_attention" else None) or cfg.rope_theta
        return params.get("rope_type", "default"), theta, params.get("partial_rotary_factor")

    def rotary_forward(self, x, position_ids, layer_type=None):
        rope_type, theta, partial = rope_params(layer_type)
        inv32 = getattr(self, f"{layer_type}_inv_freq" if layer_type else "inv_freq")
        scaling = getattr(self, f"{layer_type}_attention_scaling" if layer_type
                          else "attention_scaling", 1.0)
        dim = 2 * inv32.shape[-1]
        inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        # The recomputed table must be transformers' own, up to its float32 rounding.
        if not torch.allclose(inv, inv32.to(torch.float64), rtol=1e-6, atol=0):
            raise ValueError(f"hf_trace: cannot recompute the RoPE table ({rope_type}, "
                             f"theta {theta}, {layer_type})")
        freqs = position_ids[..., None].to(torch.float64) * inv
        emb = torch.cat((freqs, freqs), dim=-1)
        return ((emb.cos() * scaling).to(x.dtype), (emb.sin() * scaling).to(x.dtype))

    for module in model.modules():
        name = type(module).__name__
        if name.endswith("RMSNorm"):
            module.forward = types.MethodType(norm_forward(name.startswith("Gemma")), module)
        elif name.endswith("RotaryEmbedding"):
            layer_types = getattr(module, "layer_types", None) or [None]
            if all(rope_params(t)[0] == "default" for t in layer_types):
                module.forward = types.MethodType(rotary_forward, module)
            else:
                print("hf_trace: scaled RoPE: its tables stay float32", file=sys.stderr)
    model._apr_float64_softmax = True


class softmax_in_input_dtype:  # noqa: N801 (a context manager, used like a function)
    """Within the block, torch.nn.functional.softmax(x, dtype=torch.float32) keeps a float64 x in
    float64 (transformers' eager attention upcasts to float32 and back)."""

    def __init__(self, active: bool):
        self.active = active

    def __enter__(self):
        import torch.nn.functional as F

        self.original = F.softmax
        if self.active:
            import torch

            def softmax(x, dim=None, _stacklevel=3, dtype=None):
                if dtype == torch.float32 and x.dtype == torch.float64:
                    dtype = torch.float64
                return self.original(x, dim=dim, dtype=dtype)

            F.softmax = softmax
        return self

    def __exit__(self, *exc):
        import torch.nn.functional as F

        F.softmax = self.original
        return False


def load_model(model_dir: Path, dtype_name: str, exact: bool = True):
    """The transformers model in eval mode with eager attention; with dtype float64 and exact, its
    float32 islands run in float64 too (float64_islands)."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype,
                                                 attn_implementation="eager")
    if next(model.parameters()).dtype != dtype:  # transformers before 4.56 says torch_dtype
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=dtype,
                                                     attn_implementation="eager")
    model.eval()
    if exact and dtype == torch.float64:
        float64_islands(model)
    original_forward = model.forward

    def forward(*args, **kwargs):
        with softmax_in_input_dtype(getattr(model, "_apr_float64_softmax", False)):
            return original_forward(*args, **kwargs)

    model.forward = forward
    return model


def trace(model_dir: Path, token_ids: list[int], dtype_name: str):
    """{(layer, stage): np.ndarray} for one forward pass; layer None for whole-model stages."""
    return trace_model(load_model(model_dir, dtype_name), token_ids)


def trace_model(model, token_ids: list[int]):
    """(apr architecture, {(layer, stage): np.ndarray}) for one forward pass of a loaded model."""
    import torch
    import torch.nn.functional as F

    cfg = model.config
    arch = APR_ARCH.get(cfg.model_type)
    if arch is None:
        raise SystemExit(f"hf_trace: model_type {cfg.model_type!r} is not one of "
                         + ", ".join(APR_ARCH))
    modeling = importlib.import_module(type(model).__module__)
    gemma = arch in ("gemma2", "gemma3")
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

    def keep_layer_input(key):
        def hook(_module, args, kwargs):
            captured[key] = (args[0] if args else kwargs["hidden_states"]).detach()
        return hook

    base = model.model
    # The embedding is what the first layer receives: gemma2 scales the table's rows by
    # sqrt(hidden) outside its embedding module.
    hooks.append(base.layers[0].register_forward_pre_hook(keep_layer_input("embed"),
                                                          with_kwargs=True))
    hooks.append(base.norm.register_forward_hook(keep("final_norm")))
    for i, layer in enumerate(base.layers):
        attn, mlp = layer.self_attn, layer.mlp
        hooks += [
            layer.input_layernorm.register_forward_hook(keep((i, "attn_norm"))),
            attn.o_proj.register_forward_pre_hook(keep_input((i, "attention"))),
            attn.o_proj.register_forward_hook(keep((i, "attn_out"))),
            mlp.down_proj.register_forward_pre_hook(keep_input((i, "ffn_act_up"))),
            mlp.down_proj.register_forward_hook(keep((i, "ffn_out"))),
            layer.register_forward_hook(keep((i, "post_ffn_residual"))),
        ]  # fmt: skip
        if hasattr(attn, "qkv_proj"):  # phi3: one fused matrix
            hooks.append(attn.qkv_proj.register_forward_hook(keep_io((i, "qkv"))))
        else:
            for name in ("q", "k", "v"):
                hooks.append(getattr(attn, f"{name}_proj").register_forward_hook(
                    keep_io((i, name))))
        if hasattr(attn, "q_norm"):  # qwen3, gemma3
            hooks += [attn.q_norm.register_forward_hook(keep_io((i, "q_norm"))),
                      attn.k_norm.register_forward_hook(keep_io((i, "k_norm")))]
        if gemma:  # sandwich norms: post_attention_layernorm normalises the attention output
            hooks += [
                layer.post_attention_layernorm.register_forward_hook(keep((i, "attn_post_norm"))),
                layer.pre_feedforward_layernorm.register_forward_pre_hook(
                    keep_input((i, "post_attn_residual"))),
                layer.pre_feedforward_layernorm.register_forward_hook(keep((i, "ffn_norm"))),
                layer.post_feedforward_layernorm.register_forward_hook(
                    keep((i, "ffn_post_norm"))),
            ]  # fmt: skip
        else:
            hooks += [
                layer.post_attention_layernorm.register_forward_pre_hook(
                    keep_input((i, "post_attn_residual"))),
                layer.post_attention_layernorm.register_forward_hook(keep((i, "ffn_norm"))),
            ]  # fmt: skip
        if hasattr(mlp, "gate_up_proj"):  # phi3: gate and up in one matrix, gate first
            hooks.append(mlp.gate_up_proj.register_forward_hook(keep((i, "gate_up"))))
        else:
            hooks += [mlp.gate_proj.register_forward_hook(keep((i, "ffn_gate"))),
                      mlp.up_proj.register_forward_hook(keep((i, "ffn_up")))]

    # Q and K after RoPE exactly as the attention computed them: the model's own
    # apply_rotary_pos_emb, called once per layer in layer order.
    rotated = []
    original_rope = modeling.apply_rotary_pos_emb

    def recording_rope(q, k, *args, **kwargs):
        q_embed, k_embed = original_rope(q, k, *args, **kwargs)
        rotated.append((q_embed.detach(), k_embed.detach()))
        return q_embed, k_embed

    ids = torch.tensor([token_ids], dtype=torch.long)
    modeling.apply_rotary_pos_emb = recording_rope
    try:
        with torch.no_grad():
            out = model(ids, output_attentions=True, use_cache=False)
    finally:
        modeling.apply_rotary_pos_emb = original_rope
        for h in hooks:
            h.remove()
    if len(rotated) != len(base.layers):
        raise ValueError(f"hf_trace: apply_rotary_pos_emb ran {len(rotated)} times for "
                         f"{len(base.layers)} layers")

    seq = len(token_ids)
    q_dim, kv_dim = n_head * head_dim, n_kv * head_dim
    softcap = getattr(cfg, "attn_logit_softcapping", None)
    stages: dict = {}

    def np2(t):
        return t.detach().to(torch.float64).numpy()

    def gguf_cols(name, t):
        order = {"q": q_order, "k": k_order}.get(name)
        return t if order is None else t[:, torch.as_tensor(order)]

    def window_of(attn):
        """Keys a row sees (itself included) in this layer as transformers ran it; None: all."""
        if hasattr(attn, "sliding_window"):
            return attn.sliding_window
        return getattr(cfg, "sliding_window", None) if arch == "phi3" else None

    stages[(0, "embedding")] = np2(captured["embed"][0])
    act = "gelu" if gemma else "silu"
    product = "ffn_geglu" if gemma else "ffn_swigl"
    with torch.no_grad():
        for i, layer in enumerate(base.layers):
            attn, mlp = layer.self_attn, layer.mlp
            stages[(i, "attn_norm")] = np2(captured[(i, "attn_norm")][0])
            if (i, "qkv") in captured:
                x, y = captured[(i, "qkv")]
                stages[(i, "qkv_matmul")] = np2(y[0])
            else:
                proj = {}
                for name in ("q", "k", "v"):
                    lin = getattr(attn, f"{name}_proj")
                    x, y = captured[(i, name)]
                    proj[name] = (F.linear(x, lin.weight)[0], y[0])  # (before bias, after)
                stages[(i, "qkv_matmul")] = np2(torch.cat(
                    [gguf_cols(n, proj[n][0]) for n in ("q", "k", "v")], dim=-1))
                if attn.q_proj.bias is not None:
                    stages[(i, "qkv_bias")] = np2(torch.cat(
                        [gguf_cols(n, proj[n][1]) for n in ("q", "k", "v")], dim=-1))
            if (i, "q_norm") in captured:
                # qwen3 normalises (1, seq, heads, head_dim) views, gemma3 the transposed
                # (1, heads, seq, head_dim) ones. Which one it was: the norm's input is the
                # projection's output (after any bias) in one of the two layouts.
                proj_out = stages.get((i, "qkv_bias"), stages[(i, "qkv_matmul")])
                for name, heads, width in (("q", n_head, q_dim), ("k", n_kv, kv_dim)):
                    x, y = captured[(i, f"{name}_norm")]
                    col = 0 if name == "q" else q_dim
                    want = proj_out[:, col:col + width]
                    if not np.allclose(np2(x[0].reshape(seq, width)), want, rtol=1e-6, atol=1e-9):
                        x, y = x.transpose(1, 2), y.transpose(1, 2)
                        if not np.allclose(np2(x[0].reshape(seq, width)), want, rtol=1e-6,
                                           atol=1e-9):
                            raise ValueError(f"hf_trace: layer {i} {name}_norm: its input is "
                                             "not the projection's output")
                    stages[(i, f"{name}_norm")] = np2(y[0].reshape(seq, width))

            q_rot, k_rot = rotated[i]
            stages[(i, "q_post_rope")] = np2(gguf_cols(
                "q", q_rot[0].transpose(0, 1).reshape(seq, q_dim)))
            stages[(i, "k_post_rope")] = np2(gguf_cols(
                "k", k_rot[0].transpose(0, 1).reshape(seq, kv_dim)))

            # The scores as apr traces them: scaled, soft-capped, masked entries 0.
            k_all = modeling.repeat_kv(k_rot, n_head // n_kv)
            scaling = getattr(attn, "scaling", head_dim ** -0.5)
            scores = torch.matmul(q_rot, k_all.transpose(2, 3))[0] * scaling
            if softcap:
                scores = softcap * torch.tanh(scores / softcap)
            pos = torch.arange(seq)
            masked = pos[None, :] > pos[:, None]
            window = window_of(attn)
            if window:
                masked |= pos[None, :] <= pos[:, None] - window
            stages[(i, "attn_scores")] = np2(scores.masked_fill(masked, 0.0))
            stages[(i, "attn_softmax")] = np2(out.attentions[i][0])

            stages[(i, "attention")] = np2(captured[(i, "attention")][0])
            stages[(i, "attn_out")] = np2(captured[(i, "attn_out")][0])
            if gemma:
                stages[(i, "attn_post_norm")] = np2(captured[(i, "attn_post_norm")][0])
            stages[(i, "post_attn_residual")] = np2(captured[(i, "post_attn_residual")][0])
            stages[(i, "ffn_norm")] = np2(captured[(i, "ffn_norm")][0])
            if (i, "gate_up") in captured:
                gate, up = captured[(i, "gate_up")].chunk(2, dim=-1)
            else:
                gate, up = captured[(i, "ffn_gate")], captured[(i, "ffn_up")]
            act_fn = getattr(mlp, "act_fn", None) or mlp.activation_fn
            stages[(i, "ffn_gate")] = np2(gate[0])
            stages[(i, "ffn_up")] = np2(up[0])
            stages[(i, f"ffn_{act}")] = np2(act_fn(gate)[0])
            stages[(i, product)] = np2(captured[(i, "ffn_act_up")][0])
            stages[(i, "ffn_out")] = np2(captured[(i, "ffn_out")][0])
            if gemma:
                stages[(i, "ffn_post_norm")] = np2(captured[(i, "ffn_post_norm")][0])
            stages[(i, "post_ffn_residual")] = np2(captured[(i, "post_ffn_residual")][0])
    stages[(None, "final_norm")] = np2(captured["final_norm"][0])
    stages[(None, "lm_head")] = np2(out.logits[0, -1])
    return arch, stages


def forward_key(item):
    (layer, stage), _ = item
    if layer is None:
        return (1 << 32, WHOLE_MODEL_STAGES.index(stage))
    return (layer, PER_LAYER_STAGES.index(stage))


def write_trace(out_dir: Path, model_dir: Path, arch: str, stages: dict, token_ids, prompt,
                model_label: str | None = None):
    """Writes the stages as an apr trace directory. The manifest names model_dir (resolved), or
    model_label where given (a trace checked in elsewhere than it was made)."""
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
        "model": {"path": model_label or str(model_dir.resolve()),
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
