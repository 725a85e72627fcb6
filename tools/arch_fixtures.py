# SPDX-License-Identifier: MIT
"""Makes the outside fixtures of the newer model families (tests/fixtures/arch/<family>/).

For each of qwen3, gemma2, gemma3 and phi3: a tiny randomly initialised model made with
transformers' own class (Qwen3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM,
Phi3ForCausalLM), converted to GGUF (f32) by llama.cpp's own convert_hf_to_gguf.py, and the
logits transformers computes in float64 for every position of a few fixed prompts of token ids.
Nothing here is computed by apr, so tests/arch can hold apr to two outside implementations: the
file layout and metadata of llama.cpp's converter, the arithmetic of transformers.

tools/arch-fixtures.sh runs this with the interpreter that has torch and transformers and with
llama.cpp's source (the llama-cpp-python sdist's vendor/llama.cpp); run that instead.

Each family's folder holds:
  model.gguf               llama.cpp's conversion of the transformers model (f32)
  logits-<i>.npy           float64, prompt i: positions x vocab, every position's logits
  reference-trace.tar.gz   tools/hf_trace.py's float64 trace of the trace prompt, an apr trace
                           directory for `apr bisect --reference` (packed: one file, not dozens)
  fixture.json             the prompts, the transformers config, the versions of everything
                           used, sha256 of each file, and measured facts (how far the soft-caps
                           bend, which layers slide, how float64 compares with float32)

The float64 logits are float64 throughout: transformers upcasts to float32 only (its RMSNorm,
rotary tables and eager softmax compute in float32 whatever the model's dtype), so for the
reference those three are run in float64 (hf_trace.float64_islands); fixture.json records how
little that changes (max |diff| against transformers' unpatched float64 run).
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hf_trace  # noqa: E402

VOCAB = 320  # the model's rows; the SentencePiece model has fewer pieces, the converter pads
SPM_PIECES = 300
HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 64, 4, 2, 16
WINDOW = 4  # sliding window of gemma2 and gemma3: every prompt is longer

# Prompts of token ids (ids of real pieces, not padding), fixed here so they never depend on how
# a tokenizer trains. Every prompt is longer than WINDOW. The tests evaluate prompt 0 as a batch
# of its first `split` tokens and then one decode step per remaining token, and prompt 1 token by
# token from position 0, so every path and every position of the fixture is compared.
PROMPT_SEED = 20250614
PROMPT_LENGTHS = [16, 20]
PROMPT_SPLITS = [9, 1]
TRACE_LENGTH = 7  # the reference trace: a short prompt, to keep the trace small

# Per family: the transformers class and model_type, the config beyond the shared shape, and the
# weight scales. Norm weights are randomised away from their neutral value (1 for qwen3/phi3,
# 0 for gemma's 1 + w) so that a missed or doubled norm shows; q/k scales and soft-caps are
# chosen so that the caps bend the scores and logits for real (fixture.json: "softcap").
FAMILIES = {
    "qwen3": {
        "hf_arch": "Qwen3ForCausalLM",
        "model_type": "qwen3",
        "config": dict(num_hidden_layers=2, intermediate_size=96, rope_theta=1000000.0,
                       tie_word_embeddings=True, rms_norm_eps=1e-6, max_position_embeddings=128),
        "scale": {},
    },
    "gemma2": {
        "hf_arch": "Gemma2ForCausalLM",
        "model_type": "gemma2",
        # Layers alternate sliding (0, 2) and global (1). The caps sit well inside the ranges:
        # scores reach about 15 against a cap of 5 (half of them bent by over 10 %), logits
        # about 44 against 8 (fixture.json "facts"); larger q/k and embedding scales get them
        # there. query_pre_attn_scalar = head_dim: llama.cpp scales queries by 1/sqrt(head_dim)
        # for every gemma2 but the 27B (46 layers).
        "config": dict(num_hidden_layers=3, intermediate_size=64, rope_theta=10000.0,
                       query_pre_attn_scalar=HEAD_DIM, sliding_window=WINDOW,
                       attn_logit_softcapping=5.0, final_logit_softcapping=8.0,
                       tie_word_embeddings=True, rms_norm_eps=1e-6, max_position_embeddings=128,
                       hidden_activation="gelu_pytorch_tanh"),
        "scale": {"q_proj": 0.25, "k_proj": 0.25, "embed_tokens": 0.6},
    },
    "gemma3": {
        "hf_arch": "Gemma3ForCausalLM",
        "model_type": "gemma3_text",
        # Six layers: 0-4 slide with the local RoPE base, 5 is global with rope_theta (llama.cpp
        # and transformers both make every 6th layer global). hidden 48 with 4 heads of 16: Q is
        # wider than the residual stream, as in every Gemma 3 (and the file stays small).
        "hidden": 48,
        "config": dict(num_hidden_layers=6, intermediate_size=64, rope_theta=1000000.0,
                       rope_local_base_freq=10000.0, query_pre_attn_scalar=HEAD_DIM,
                       sliding_window=WINDOW, tie_word_embeddings=True, rms_norm_eps=1e-6,
                       max_position_embeddings=128, hidden_activation="gelu_pytorch_tanh"),
        "scale": {},
    },
    "phi3": {
        "hf_arch": "Phi3ForCausalLM",
        "model_type": "phi3",
        # Default RoPE (no LongRoPE factors). Phi-3-mini's window of 2047 is kept in the config,
        # as the real model has it: it is longer than every prompt, so transformers applies no
        # window either, and llama.cpp ignores it.
        "config": dict(num_hidden_layers=2, intermediate_size=96, rope_theta=10000.0,
                       sliding_window=2047, original_max_position_embeddings=128,
                       max_position_embeddings=128, tie_word_embeddings=False,
                       rms_norm_eps=1e-5, pad_token_id=0),
        "scale": {},
    },
}

CORPUS = [
    "What is 2+2? It is 4, and 3+3 is 6.",
    "The quick brown fox jumps over the lazy dog.",
    "Tracing finds the first layer and stage where a backend goes wrong.",
    "A sliding window lets each token see only the few tokens before it.",
    "Soft-capping bends large scores with a hyperbolic tangent.",
    "Queries and keys are normalised per head before the rotary embedding.",
    "Every sixth layer attends globally; the others keep a local window.",
    "Numbers like 12, 345 and 6789 appear in text; so do symbols: #, %, & and @.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "Peter Piper picked a peck of pickled peppers; where is the peck he picked?",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood?",
    "Jackdaws love my big sphinx of quartz. Pack my box with five dozen liquor jugs.",
    "ZEBRAS, XYLOPHONES and VIOLINS: upper case letters matter too.",
    "Sphinx of black quartz, judge my vow; the five boxing wizards jump quickly.",
]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def train_tokenizer(out_dir: Path) -> Path:
    """A SentencePiece BPE model of SPM_PIECES pieces: every family's converter class reads
    tokenizer.model (a byte-level BPE tokenizer.json would need a pre-tokenizer llama.cpp's
    converter recognises by hash, which a freshly trained vocabulary never is)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 8), model_writer=model, vocab_size=SPM_PIECES,
        model_type="bpe", character_coverage=1.0, num_threads=1, hard_vocab_limit=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    path = out_dir / "tokenizer.model"
    path.write_bytes(model.getvalue())
    return path


def prompts(n_pieces: int) -> list[list[int]]:
    rng = np.random.default_rng(PROMPT_SEED)
    # Ids of ordinary pieces: past <unk>, <s>, </s>, below the converter's [PADn] filler.
    return [[int(t) for t in rng.integers(3, n_pieces, size=n)] for n in PROMPT_LENGTHS]


def make_model(family: str, spec: dict, out_dir: Path, seed: int):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(
        spec["model_type"], vocab_size=VOCAB, hidden_size=spec.get("hidden", HIDDEN),
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
        bos_token_id=1, eos_token_id=2, attn_implementation="eager", **spec["config"])
    if family == "gemma3":
        # layer_types gives the 6th layer full attention; say so here rather than assume.
        assert cfg.layer_types == ["sliding_attention"] * 5 + ["full_attention"], cfg.layer_types
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    assert type(model).__name__ == spec["hf_arch"], type(model).__name__
    gemma = family.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                # gemma's norms multiply by 1 + w (the converter stores 1 + w), the others by w
                p.copy_((0.0 if gemma else 1.0) + 0.2 * torch.randn_like(p))
            else:
                scale = next((s for key, s in spec["scale"].items() if key in name), 0.15)
                p.copy_(scale * torch.randn_like(p))
    model.save_pretrained(out_dir, safe_serialization=True)
    return model


def convert(llama_cpp: Path, hf_dir: Path, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(llama_cpp / "gguf-py"))
    cmd = [sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"), str(hf_dir), "--outfile",
           str(out), "--outtype", "f32"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"convert_hf_to_gguf.py failed for {hf_dir}:\n{proc.stderr[-4000:]}")


def logits_of(model, token_ids) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(torch.tensor([token_ids]), use_cache=False)
    return out.logits[0].to(torch.float64).numpy()


def float32_ops(model, token_ids) -> dict:
    """{aten op: count} of the operations of one forward pass that produce float32 tensors."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Spy(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.found: dict = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for o in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(o, torch.Tensor) and o.dtype == torch.float32:
                    self.found[str(func)] = self.found.get(str(func), 0) + 1
            return out

    spy = Spy()
    with torch.no_grad(), spy:
        model(torch.tensor([token_ids]), use_cache=False)
    return spy.found


def facts(model, token_ids) -> dict:
    """What the fixture exercises, measured on one prompt: the attention scores and logits before
    and after their soft-caps (how many the caps bend by more than 10 %), and which layers slide.
    The scores before the cap come from hf_trace's Q and K after RoPE (visible entries only), the
    logits before the cap from its final norm and the output matrix."""
    cfg = model.config
    _, stages = hf_trace.trace_model(model, token_ids)
    n_head, n_kv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    seq = len(token_ids)
    raw_scores = []
    for i, layer in enumerate(model.model.layers):
        q = stages[(i, "q_post_rope")].reshape(seq, n_head, hd)
        k = stages[(i, "k_post_rope")].reshape(seq, n_kv, hd)
        k = np.repeat(k, n_head // n_kv, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) * layer.self_attn.scaling
        visible = stages[(i, "attn_softmax")] > 0
        raw_scores.append(np.abs(s[visible]))
    raw_scores = np.concatenate(raw_scores)
    head = model.lm_head.weight.detach().double().numpy()
    raw_logits = np.abs(stages[(None, "final_norm")] @ head.T).ravel()

    def bent(raw, cap):
        capped = cap * np.tanh(raw / cap)
        return {"cap": cap, "max_before_cap": float(raw.max()), "max_after_cap":
                float(capped.max()), "fraction_bent_over_10_percent":
                float(np.mean(raw - capped > 0.1 * raw))}

    out: dict = {"max_abs_attn_score_before_any_cap": float(raw_scores.max()),
                 "max_abs_logit_before_any_cap": float(raw_logits.max())}
    if getattr(cfg, "attn_logit_softcapping", None):
        out["attn_softcap"] = bent(raw_scores, cfg.attn_logit_softcapping)
    if getattr(cfg, "final_logit_softcapping", None):
        out["final_softcap"] = bent(raw_logits, cfg.final_logit_softcapping)
    out["layer_types"] = list(getattr(cfg, "layer_types", None) or [])
    out["sliding_window"] = getattr(cfg, "sliding_window", None)
    return out


def compact_json(value) -> str:
    """Indented JSON with lists of numbers kept on one line."""
    import re

    text = json.dumps(value, indent=1)
    return re.sub(r"\[\s*(-?[0-9.e+-]+(?:,\s*-?[0-9.e+-]+)*)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
                  text)


def pack_trace(trace_dir: Path, out: Path) -> None:
    """A reproducible tar.gz of a trace directory (sorted names, zero times and owners)."""
    import gzip

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(trace_dir.rglob("*")):
            if not path.is_file():
                continue
            info = tarfile.TarInfo(str(path.relative_to(trace_dir)))
            data = path.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    with open(out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue())


def versions(llama_cpp: Path) -> dict:
    import sentencepiece
    import tokenizers
    import torch
    import transformers

    sdist = llama_cpp.parent.parent.name  # llama_cpp_python-<version>
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "sentencepiece": sentencepiece.__version__, "numpy": np.__version__,
            "converter": f"{sdist}/vendor/llama.cpp/convert_hf_to_gguf.py (--outtype f32)"}


def make_family(family: str, llama_cpp: Path, out_root: Path, work: Path, tokenizer: Path,
                seed: int) -> dict:
    spec = FAMILIES[family]
    hf_dir = work / f"{family}-hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(tokenizer, hf_dir / "tokenizer.model")
    make_model(family, spec, hf_dir, seed)
    out = out_root / family
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        old.unlink()
    gguf_path = out / "model.gguf"
    convert(llama_cpp, hf_dir, gguf_path)

    import sentencepiece as spm

    n_pieces = spm.SentencePieceProcessor(model_file=str(tokenizer)).vocab_size()
    token_prompts = prompts(n_pieces)

    # transformers as it runs (float32), as it runs after model.double() (float64 with float32
    # islands), and float64 throughout: the reference.
    model32 = hf_trace.load_model(hf_dir, "float32", exact=False)
    model64 = hf_trace.load_model(hf_dir, "float64", exact=False)
    exact = hf_trace.load_model(hf_dir, "float64", exact=True)
    if family == "phi3":
        assert exact.config.sliding_window > max(PROMPT_LENGTHS)
    # The reference computes nothing in float32 (transformers' float32 norms, RoPE tables and
    # softmax are what model64 still has).
    leftover = float32_ops(exact, token_prompts[0])
    if leftover:
        raise SystemExit(f"{family}: the float64 reference still computes in float32: {leftover}")
    files, compare = [], []
    for i, ids in enumerate(token_prompts):
        ref = logits_of(exact, ids)
        scale = max(1.0, float(np.abs(ref).max()))
        compare.append({
            "prompt": i,
            "float32_max_abs_diff_rel": float(np.abs(logits_of(model32, ids) - ref).max() / scale),
            "unpatched_float64_max_abs_diff_rel":
                float(np.abs(logits_of(model64, ids) - ref).max() / scale)})
        name = f"logits-{i}.npy"
        np.save(out / name, ref)
        files.append(name)

    trace_ids = token_prompts[0][:TRACE_LENGTH]
    with tempfile.TemporaryDirectory() as tmp:
        arch, stages = hf_trace.trace_model(exact, trace_ids)
        hf_trace.write_trace(Path(tmp), hf_dir, arch, stages, trace_ids, None,
                             model_label=f"tests/fixtures/arch/{family} (transformers model)")
        pack_trace(Path(tmp), out / "reference-trace.tar.gz")

    config = json.loads((hf_dir / "config.json").read_text())
    meta = {
        "format": "apr-arch-fixture-v1",
        "family": family,
        "hf_architecture": spec["hf_arch"],
        "made_by": "tools/arch-fixtures.sh (tools/arch_fixtures.py)",
        "seed": seed,
        "versions": versions(llama_cpp),
        "transformers_config": config,
        "tokenizer": {"kind": "sentencepiece bpe", "pieces": n_pieces, "model_vocab": VOCAB},
        "prompts": [{"token_ids": ids, "logits": name, "split": split}
                    for ids, name, split in zip(token_prompts, files, PROMPT_SPLITS)],
        "trace_prompt": trace_ids,
        "reference_dtype": "float64 throughout: transformers' float32 RMSNorm, RoPE tables and "
                           "softmax run in float64 (tools/hf_trace.py float64_islands); no "
                           "operation of the forward pass yields float32 (checked)",
        "transformers_vs_reference": compare,
        "facts": facts(exact, token_prompts[0]),
        "sha256": {p.name: sha256_file(p) for p in sorted(out.iterdir())},
    }
    (out / "fixture.json").write_text(compact_json(meta) + "\n")
    return meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--llama-cpp", type=Path, required=True,
                   help="llama.cpp source folder (holds convert_hf_to_gguf.py and gguf-py)")
    p.add_argument("--out", type=Path, required=True, help="fixture root (tests/fixtures/arch)")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated subset of " + ", ".join(FAMILIES))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", type=Path, help="keep the transformers models in this folder")
    args = p.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    for f in families:
        if f not in FAMILIES:
            p.error(f"unknown family {f!r}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="apr-arch-fixtures-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        tokenizer = train_tokenizer(work)
        for f in families:
            meta = make_family(f, args.llama_cpp, args.out, work, tokenizer, args.seed)
            sizes = {n: (args.out / f / n).stat().st_size for n in meta["sha256"]}
            print(f"{f}: " + ", ".join(f"{n} {s / 1024:.0f} KiB" for n, s in sizes.items()),
                  file=sys.stderr)
            print(f"{f}: facts {json.dumps(meta['facts'])}", file=sys.stderr)
            print(f"{f}: transformers vs reference {json.dumps(meta['transformers_vs_reference'])}",
                  file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
