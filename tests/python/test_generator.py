# SPDX-License-Identifier: MIT
"""The generated GGUF files: structure, metadata types, weights, tokenizer, determinism."""

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize

from aprgen.config import make_config
from aprgen.vocab_gpt2 import byte_to_unicode
from aprgen.weights import generate, tensor_specs
from aprgen.writer import tensor_types
from conftest import TOOLS

ALL_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
             "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M"]  # fmt: skip

# Largest |dequantized − generated| relative to the tensor's max |value|, per ggml type (loose:
# the quantizer tests hold the tight per-block bounds; this catches a mislabelled tensor).
WEIGHT_TOLERANCE = {"F32": 0.0, "F16": 1e-3, "BF16": 4e-3, "Q8_0": 0.01, "Q6_K": 0.05,
                    "Q5_1": 0.05, "Q5_0": 0.07, "Q5_K": 0.05, "Q4_1": 0.08, "Q4_0": 0.13,
                    "Q4_K": 0.1, "Q3_K": 0.35, "Q2_K": 0.45}  # fmt: skip


def field(reader, key):
    f = reader.fields[key]
    return f.types, f.contents()


def expected_names(arch, layers, tied):
    names = ["token_embd.weight", "output_norm.weight"] + ([] if tied else ["output.weight"])
    for i in range(layers):
        per_layer = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                     "ffn_gate", "ffn_up", "ffn_down"]  # fmt: skip
        names += [f"blk.{i}.{n}.weight" for n in per_layer]
        if arch == "qwen2":
            names += [f"blk.{i}.attn_{p}.bias" for p in "qkv"]
    return sorted(names)


@pytest.mark.parametrize("file_type", ALL_TYPES)
@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_file_structure_and_weights(models, arch, file_type):
    path = models.get(arch, "tiny", file_type)
    r = GGUFReader(str(path))
    cfg = make_config(arch, "tiny", file_type, 1234)
    tensors = {t.name: t for t in r.tensors}
    assert sorted(tensors) == expected_names(arch, 2, cfg.tied)

    h, hd = 64, 16
    ne = {"token_embd.weight": [64, 512], "output.weight": [64, 512],
          "output_norm.weight": [64]}  # fmt: skip
    for i in range(2):
        ne.update({f"blk.{i}.attn_q.weight": [h, 4 * hd], f"blk.{i}.attn_k.weight": [h, 2 * hd],
                   f"blk.{i}.attn_v.weight": [h, 2 * hd], f"blk.{i}.attn_output.weight": [h, h],
                   f"blk.{i}.ffn_gate.weight": [h, 128], f"blk.{i}.ffn_up.weight": [h, 128],
                   f"blk.{i}.ffn_down.weight": [128, h], f"blk.{i}.attn_q.bias": [4 * hd],
                   f"blk.{i}.attn_k.bias": [2 * hd], f"blk.{i}.attn_v.bias": [2 * hd]})  # fmt: skip
    specs = {s.name: s for s in tensor_specs(cfg)}
    for name, t in tensors.items():
        if name in ne:
            assert [int(d) for d in t.shape] == ne[name], name
        type_name = t.tensor_type.name
        if len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1):
            assert type_name == "F32", f"1-D {name} must stay F32"
        values = dequantize(t.data, t.tensor_type).reshape(specs[name].shape)
        original = generate(specs[name], 1234)
        err = np.abs(values - original).max() / np.abs(original).max()
        assert err <= WEIGHT_TOLERANCE[type_name], f"{name} ({type_name}): {err}"


# Expected ggml types of a few tensors. Tiny rows (64, 128) are not multiples of 256, so every K
# type falls back as llama-quantize does; small (256 wide, ffn 704) keeps K types except ffn_down.
FALLBACK_CASES = [
    ("tiny", "Q2_K", {"blk.0.attn_q.weight": "Q4_0", "blk.0.ffn_down.weight": "Q4_0"}),
    ("tiny", "Q3_K", {"blk.0.attn_q.weight": "Q4_0"}),
    ("tiny", "Q4_K", {"blk.0.attn_q.weight": "Q5_0", "token_embd.weight": "Q5_0"}),
    ("tiny", "Q5_K", {"blk.1.ffn_up.weight": "Q5_1"}),
    ("tiny", "Q6_K", {"output.weight": "Q8_0"}),
    ("small", "Q2_K", {"blk.0.attn_q.weight": "Q2_K", "blk.0.ffn_down.weight": "Q4_0"}),
    ("small", "Q3_K", {"blk.3.ffn_gate.weight": "Q3_K", "blk.3.ffn_down.weight": "Q4_0"}),
    ("small", "Q4_K", {"token_embd.weight": "Q4_K", "blk.2.ffn_down.weight": "Q5_0"}),
    ("small", "Q5_K", {"output.weight": "Q5_K", "blk.0.ffn_down.weight": "Q5_1"}),
    ("small", "Q6_K", {"blk.0.attn_v.weight": "Q6_K", "blk.0.ffn_down.weight": "Q8_0"}),
    ("small", "Q8_0", {"blk.0.ffn_down.weight": "Q8_0", "output_norm.weight": "F32"}),
]


@pytest.mark.parametrize("preset,file_type,expected", FALLBACK_CASES)
def test_types_and_fallbacks(models, preset, file_type, expected):
    r = GGUFReader(str(models.get("llama", preset, file_type)))
    types = {t.name: t.tensor_type.name for t in r.tensors}
    for name, type_name in expected.items():
        assert types[name] == type_name, name


def test_metadata_value_types(models):
    r = GGUFReader(str(models.get("qwen2", "tiny", "Q8_0")))
    u32, f32, arr = GGUFValueType.UINT32, GGUFValueType.FLOAT32, GGUFValueType.ARRAY
    s, b = GGUFValueType.STRING, GGUFValueType.BOOL
    expect = {
        "general.architecture": ([s], "qwen2"),
        "general.file_type": ([u32], 7),
        "general.quantization_version": ([u32], 2),
        "qwen2.context_length": ([u32], 256),
        "qwen2.embedding_length": ([u32], 64),
        "qwen2.block_count": ([u32], 2),
        "qwen2.feed_forward_length": ([u32], 128),
        "qwen2.attention.head_count": ([u32], 4),
        "qwen2.attention.head_count_kv": ([u32], 2),
        "qwen2.rope.dimension_count": ([u32], 16),
        "tokenizer.ggml.model": ([s], "gpt2"),
        "tokenizer.ggml.pre": ([s], "qwen2"),
        "tokenizer.ggml.add_bos_token": ([b], False),
    }
    for key, (types, value) in expect.items():
        assert field(r, key) == (types, value), key
    assert field(r, "qwen2.attention.layer_norm_rms_epsilon")[0] == [f32]
    assert field(r, "qwen2.attention.layer_norm_rms_epsilon")[1] == pytest.approx(1e-6)
    assert field(r, "qwen2.rope.freq_base") == ([f32], 1e6)
    assert field(r, "tokenizer.ggml.tokens")[0] == [arr, s]
    assert field(r, "tokenizer.ggml.merges")[0] == [arr, s]
    assert field(r, "tokenizer.ggml.scores")[0] == [arr, f32]
    assert field(r, "tokenizer.ggml.token_type")[0] == [arr, GGUFValueType.INT32]
    for key in ("bos", "eos", "padding"):
        assert field(r, f"tokenizer.ggml.{key}_token_id")[0] == [u32]


def test_overrides_reach_the_file(models):
    path = models.get("llama", "tiny", "F32", hidden=96, heads=6, kv_heads=3, ffn=160,
                      vocab=600, ctx=128, rope_base=5e5, eps=1e-5, tied=True)  # fmt: skip
    r = GGUFReader(str(path))
    assert field(r, "llama.embedding_length")[1] == 96
    assert field(r, "llama.attention.head_count")[1] == 6
    assert field(r, "llama.attention.head_count_kv")[1] == 3
    assert field(r, "llama.feed_forward_length")[1] == 160
    assert field(r, "llama.context_length")[1] == 128
    assert field(r, "llama.rope.freq_base")[1] == 5e5
    assert len(field(r, "tokenizer.ggml.tokens")[1]) == 600
    names = {t.name for t in r.tensors}
    assert "output.weight" not in names
    embd = next(t for t in r.tensors if t.name == "token_embd.weight")
    assert [int(d) for d in embd.shape] == [96, 600]


def test_qwen25_05b_preset_shape():
    cfg = make_config("qwen2", "qwen2.5-0.5b", "F16", 1234)
    assert (cfg.hidden, cfg.layers, cfg.heads, cfg.kv_heads, cfg.ffn, cfg.vocab, cfg.ctx) == (
        896, 24, 14, 2, 4864, 151936, 32768)  # fmt: skip
    assert cfg.tied and cfg.rope_base == 1e6 and cfg.eps == 1e-6


def test_q4_k_m_mix_matches_llama_cpp_counts_on_the_05b_shape():
    """GGUF-FACTS §6.1: llama-quantize's 0.5B Q4_K_M has F32 ×121, Q5_0 ×132, Q8_0 ×13,
    Q6_K ×12 and Q4_K ×12."""
    cfg = make_config("qwen2", "qwen2.5-0.5b", "Q4_K_M", 1234)
    counts = Counter(tensor_types(cfg).values())
    assert counts == {"F32": 121, "Q5_0": 132, "Q8_0": 13, "Q6_K": 12, "Q4_K": 12}


def test_q4_k_m_mix_in_a_small_file(models):
    r = GGUFReader(str(models.get("llama", "small", "Q4_K_M")))
    types = {t.name: t.tensor_type.name for t in r.tensors}
    # 4 layers: the use_more_bits layers are 2 and 3 (every third after the first eighth, and
    # the last eighth).
    for i in range(4):
        more = i >= 2
        assert types[f"blk.{i}.attn_v.weight"] == ("Q6_K" if more else "Q4_K")
        assert types[f"blk.{i}.ffn_down.weight"] == ("Q8_0" if more else "Q5_0")  # 704 wide
        assert types[f"blk.{i}.attn_q.weight"] == "Q4_K"
        assert types[f"blk.{i}.ffn_gate.weight"] == "Q4_K"
    assert types["output.weight"] == "Q6_K"
    assert types["token_embd.weight"] == "Q4_K"
    tied = make_config("qwen2", "tiny", "Q4_K_M", 1234, tied=True)
    assert tensor_types(tied)["token_embd.weight"] == "Q8_0"  # Q6_K, 64 wide: falls back


def run_generator(tmp_path, name, *args):
    out = tmp_path / name
    cmd = [sys.executable, str(TOOLS / "gen_model.py"), "--out", str(out), *args]
    subprocess.run(cmd, check=True, capture_output=True)
    return out.read_bytes()


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_same_arguments_give_identical_bytes(tmp_path, arch):
    # Separate processes, so differing string-hash seeds would show up as differing files.
    args = ["--arch", arch, "--type", "Q4_K_M", "--preset", "small"]
    a = run_generator(tmp_path, "a.gguf", *args)
    b = run_generator(tmp_path, "b.gguf", *args, "--seed", "1234")
    c = run_generator(tmp_path, "c.gguf", *args, "--seed", "99")
    assert a == b
    assert len(a) == len(c) and a != c


def test_bad_arguments_fail_cleanly(tmp_path):
    cmd = [sys.executable, str(TOOLS / "gen_model.py"), "--out", str(tmp_path / "x.gguf"),
           "--heads", "5"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not a multiple of heads" in proc.stderr
    assert not (tmp_path / "x.gguf").exists()


def test_gpt2_tokenizer(models):
    r = GGUFReader(str(models.get("qwen2", "small", "F32")))
    tokens = field(r, "tokenizer.ggml.tokens")[1]
    types = field(r, "tokenizer.ggml.token_type")[1]
    merges = field(r, "tokenizer.ggml.merges")[1]
    assert len(tokens) == 2048 == len(types)
    byte_map = byte_to_unicode()
    assert tokens[:256] == [byte_map[b] for b in range(256)]
    assert byte_map[ord(" ")] == "\u0120" and byte_map[ord("\n")] == "\u010a"
    index = {t: i for i, t in enumerate(tokens)}
    assert len(merges) > 500
    for m in merges:
        left, right = m.split(" ", 1)
        assert left in index and right in index and left + right in index, m
        assert index[left + right] >= 256
    eot = tokens.index("<|endoftext|>")
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        assert types[tokens.index(special)] == 3
    for key in ("bos", "eos", "padding"):
        assert field(r, f"tokenizer.ggml.{key}_token_id")[1] == eot
    pads = [i for i, t in enumerate(types) if t == 5]
    assert pads and all(tokens[i] == f"[PAD{i}]" for i in pads)
    assert pads == list(range(pads[0], 2048))


def test_gpt2_vocab_round_trips_text_through_hf_tokenizers(models):
    tokenizers = pytest.importorskip("tokenizers")
    r = GGUFReader(str(models.get("qwen2", "small", "F32")))
    tokens = field(r, "tokenizer.ggml.tokens")[1]
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")[1]]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    text = "The quick brown fox can't stop 12345 times!\n\tdef f(x): return x  # 今天 🙂"
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text
    # Learned merges must compress ordinary English well below one token per byte.
    assert len(tok.encode("the quick brown fox jumps over the lazy dog").ids) < 20


def test_llama_tokenizer(models):
    r = GGUFReader(str(models.get("llama", "tiny", "F32")))
    tokens = field(r, "tokenizer.ggml.tokens")[1]
    types = field(r, "tokenizer.ggml.token_type")[1]
    scores = field(r, "tokenizer.ggml.scores")[1]
    assert field(r, "tokenizer.ggml.model")[1] == "llama"
    assert tokens[:3] == ["<unk>", "<s>", "</s>"] and types[:3] == [2, 3, 3]
    assert tokens[3:259] == [f"<0x{b:02X}>" for b in range(256)]
    assert all(t == 6 for t in types[3:259])
    normal = [i for i, t in enumerate(types) if t == 1]
    assert len(normal) > 200 and normal == list(range(259, 259 + len(normal)))
    assert all(scores[a] > scores[b] for a, b in zip(normal, normal[1:]))
    assert any(tokens[i].startswith("\u2581") and len(tokens[i]) > 2 for i in normal)
    assert field(r, "tokenizer.ggml.add_bos_token")[1] is True
    assert field(r, "tokenizer.ggml.add_space_prefix")[1] is True
    assert field(r, "tokenizer.ggml.bos_token_id")[1] == 1
    assert field(r, "tokenizer.ggml.eos_token_id")[1] == 2
    assert len(tokens) == 512
    assert all(tokens[i] == f"[PAD{i}]" for i, t in enumerate(types) if t == 5)


def spm_encode(text, tokens, scores):
    """SentencePiece BPE as GGUF-FACTS §5 describes it: '▁' for spaces, repeatedly merge the
    adjacent pair whose concatenation is a vocab token of highest score, bytes as fallback."""
    index = {t: i for i, t in enumerate(tokens)}
    symbols = list(("\u2581" + text).replace(" ", "\u2581"))
    while True:
        best = None
        for i in range(len(symbols) - 1):
            merged = symbols[i] + symbols[i + 1]
            if merged in index and (best is None or scores[index[merged]] > best[0]):
                best = (scores[index[merged]], i)
        if best is None:
            break
        i = best[1]
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    ids = []
    for s in symbols:
        ids += [index[s]] if s in index else [index[f"<0x{b:02X}>"] for b in s.encode()]
    return ids


def spm_decode(ids, tokens):
    out = b""
    for i in ids:
        t = tokens[i]
        out += bytes([int(t[3:5], 16)]) if t.startswith("<0x") else t.encode()
    return out.decode().replace("\u2581", " ")[1:]


def test_llama_vocab_encodes_and_decodes_text(models):
    r = GGUFReader(str(models.get("llama", "small", "F32")))
    tokens = field(r, "tokenizer.ggml.tokens")[1]
    scores = field(r, "tokenizer.ggml.scores")[1]
    text = "The quick brown fox can't stop 12345 times!\n\tdef f(x): return x  # 今天 🙂"
    ids = spm_encode(text, tokens, scores)
    assert spm_decode(ids, tokens) == text
    assert any(3 <= i < 259 for i in ids)  # newline and tab go through byte fallback
    english = "the quick brown fox jumps over the lazy dog"
    assert len(spm_encode(english, tokens, scores)) < 20
