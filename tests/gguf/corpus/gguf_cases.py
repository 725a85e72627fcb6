# SPDX-License-Identifier: MIT
"""The malformed GGUF corpus: each case makes one file from a valid tiny qwen2 model (generated
by tools/gen_model.py and re-encoded by gguf_bytes) and names the one line apr must print for it.
`{path}` in an expected line stands for the file's full path, `{name}` for its file name.

Classes: header and counts, metadata records, tensor directory, data layout, files that are not
files, hyper-parameters (missing, out of range, non-finite), vocabulary and special ids, tensors
(missing, shapes, types), and non-finite weights."""

import struct

import gguf_bytes as gb
from gguf_bytes import ARRAY, KV, STRING, U8, U64, Tensor, kv_f32, kv_f64, kv_str, kv_u32, u32, u64

A = "qwen2"
NAN = float("nan")
INF = float("inf")


def nan_tensor(t: Tensor, index: int = 0, value: float = NAN) -> Tensor:
    """t with element `index` (F32 data) set to `value`; negative indices count from the end."""
    data = bytearray(t.data)
    n = len(data) // 4
    i = index % n
    data[4 * i:4 * i + 4] = struct.pack("<f", value)
    return gb.replace(t, data=bytes(data))


def fill_tensor(t: Tensor, value: float) -> Tensor:
    return gb.replace(t, data=struct.pack("<f", value) * (len(t.data) // 4))


class Case:
    def __init__(self, name, make, verb="info"):
        self.name, self.make, self.verb, self.expected = name, make, verb, None


def edit(fn):
    """A case maker that edits a copy of the base model and returns its bytes."""

    def make(base: gb.Gguf) -> bytes:
        g = base.copy()
        out = fn(g)
        return (out if out is not None else g).build() if not isinstance(out, bytes) else out

    return make


def raw(fn):
    """A case maker that edits the base model's bytes."""
    return lambda base: fn(base.build())


def at(b: bytes, offset: int, value: bytes) -> bytes:
    return b[:offset] + value + b[offset + len(value):]


def tensors(g, fn):
    g.tensors = [fn(t) for t in g.tensors]


def set_tensor(g, name, fn):
    g.tensors = [fn(t) if t.name == name else t for t in g.tensors]


CASES = [
    # --- header and counts -------------------------------------------------------------
    Case("empty file", raw(lambda b: b"")),
    Case("three bytes", raw(lambda b: b"GGU")),
    Case("bad magic", raw(lambda b: at(b, 0, b"GGUX"))),
    Case("header cut at 12 bytes", raw(lambda b: b[:12])),
    Case("version 0", raw(lambda b: at(b, 4, u32(0)))),
    Case("version 1", raw(lambda b: at(b, 4, u32(1)))),
    Case("version 4", raw(lambda b: at(b, 4, u32(4)))),
    Case("byte-swapped version", raw(lambda b: at(b, 4, u32(0x03000000)))),
    Case("tensor count 2^40", raw(lambda b: at(b, 8, u64(1 << 40)))),
    Case("kv count 2^40", raw(lambda b: at(b, 16, u64(1 << 40)))),
    Case("negative tensor count", raw(lambda b: at(b, 8, u64(-1)))),
    Case("negative kv count", raw(lambda b: at(b, 16, u64(-6)))),
    Case("kv count one too many", edit(lambda g: setattr(g, "n_kv", len(g.kvs) + 1))),
    Case("tensor count one too many", edit(lambda g: setattr(g, "n_tensors", len(g.tensors) + 1))),
    # --- metadata records --------------------------------------------------------------
    Case("key length past the end", raw(lambda b: at(b, 24, u64(1 << 24)))),
    Case("key length over 1 GiB", raw(lambda b: at(b, 24, u64((1 << 30) + 1)))),
    Case("empty key", edit(lambda g: g.kvs.insert(1, kv_u32("", 1)))),
    Case("duplicate key", edit(lambda g: g.kvs.append(kv_u32(f"{A}.block_count", 2)))),
    Case("value type 13", edit(lambda g: g.kvs.append(KV("x", 13, u64(0))))),
    Case("array element type 13", edit(lambda g: g.kvs.append(KV("x", ARRAY, u32(13) + u64(0))))),
    Case("nested array",
         edit(lambda g: g.kvs.append(KV("x", ARRAY, u32(ARRAY) + u64(1) + u32(U8) + u64(1) + b"\1")))),
    Case("array count over 2^30",
         edit(lambda g: g.kvs.append(KV("x", ARRAY, u32(U8) + u64((1 << 30) + 1))))),
    Case("array longer than the file",
         edit(lambda g: g.kvs.append(KV("x", ARRAY, u32(U64) + u64(1 << 29))))),
    Case("string value longer than the file",
         edit(lambda g: g.kvs.append(KV("x", STRING, u64(1 << 40) + b"x")))),
    Case("string array element longer than the file",
         edit(lambda g: g.kvs.append(KV("x", ARRAY, u32(STRING) + u64(2) + gb.gstr("a") + u64(10**9))))),
    Case("alignment 0", edit(lambda g: g.kvs.append(kv_u32("general.alignment", 0)))),
    Case("alignment 3", edit(lambda g: g.kvs.append(kv_u32("general.alignment", 3)))),
    Case("alignment stored as u64",
         edit(lambda g: g.kvs.append(KV("general.alignment", U64, u64(32))))),
    Case("architecture is a number", edit(lambda g: g.set(kv_u32("general.architecture", 7))), verb="run"),
    # --- tensor directory --------------------------------------------------------------
    Case("tensor name of 64 bytes",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, name="x" * 64)))),
    Case("duplicate tensor name",
         edit(lambda g: set_tensor(g, "output_norm.weight",
                                   lambda t: gb.replace(t, name="token_embd.weight")))),
    Case("n_dims 5",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, ne=[64, 1, 1, 1, 1])))),
    Case("ne product overflows",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, ne=[1 << 32, 1 << 32])))),
    Case("negative ne",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, ne=[-1])))),
    Case("byte size overflows",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, ne=[1 << 62])))),
    Case("ggml type 4 (removed)",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, ggml_type=4)))),
    Case("ggml type 99",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, ggml_type=99)))),
    Case("ne[0] not a multiple of the block size",
         edit(lambda g: set_tensor(g, "output_norm.weight",
                                   lambda t: gb.replace(t, ne=[48], ggml_type=gb.GGML_Q4_0)))),
    # --- data layout -------------------------------------------------------------------
    Case("misaligned tensor offset",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, offset=16)))),
    Case("tensors overlap",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, offset=0)))),
    Case("offset far past the end",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, offset=1 << 40)))),
    Case("offset near 2^64",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: gb.replace(t, offset=-32)))),
    Case("last tensor cut short", raw(lambda b: b[:-1])),
    Case("file cut in the metadata", raw(lambda b: b[:4000])),
    Case("file cut in the tensor directory", raw(lambda b: b[:14500])),
    # --- hyper-parameters (the model loader) -------------------------------------------
    Case("no general.architecture", edit(lambda g: g.drop("general.architecture")), verb="run"),
    Case("architecture gpt9", edit(lambda g: g.set(kv_str("general.architecture", "gpt9"))), verb="run"),
    Case("no embedding_length", edit(lambda g: g.drop(f"{A}.embedding_length")), verb="run"),
    Case("block_count 0", edit(lambda g: g.set(kv_u32(f"{A}.block_count", 0))), verb="run"),
    Case("block_count 2^31", edit(lambda g: g.set(kv_u32(f"{A}.block_count", 1 << 31))), verb="run"),
    Case("block_count is a string", edit(lambda g: g.set(kv_str(f"{A}.block_count", "2"))), verb="run"),
    Case("head_count_kv does not divide head_count",
         edit(lambda g: g.set(kv_u32(f"{A}.attention.head_count_kv", 3))), verb="run"),
    Case("odd rope.dimension_count", edit(lambda g: g.set(kv_u32(f"{A}.rope.dimension_count", 15))), verb="run"),
    Case("no rms epsilon", edit(lambda g: g.drop(f"{A}.attention.layer_norm_rms_epsilon")), verb="run"),
    Case("rms epsilon NaN",
         edit(lambda g: g.set(kv_f32(f"{A}.attention.layer_norm_rms_epsilon", NAN))), verb="run"),
    Case("rms epsilon inf",
         edit(lambda g: g.set(kv_f32(f"{A}.attention.layer_norm_rms_epsilon", INF))), verb="run"),
    Case("rms epsilon 0", edit(lambda g: g.set(kv_f32(f"{A}.attention.layer_norm_rms_epsilon", 0))), verb="run"),
    Case("rope.freq_base inf", edit(lambda g: g.set(kv_f32(f"{A}.rope.freq_base", INF))), verb="run"),
    Case("rope.freq_base NaN", edit(lambda g: g.set(kv_f32(f"{A}.rope.freq_base", NAN))), verb="run"),
    Case("rope.freq_base 1e39 as f64 (infinite as f32)",
         edit(lambda g: g.set(kv_f64(f"{A}.rope.freq_base", 1e39))), verb="run"),
    Case("rope.freq_base 0.5", edit(lambda g: g.set(kv_f32(f"{A}.rope.freq_base", 0.5))), verb="run"),
    Case("rope scaling factor inf", edit(lambda g: g.set(kv_f32(f"{A}.rope.scaling.factor", INF))), verb="run"),
    Case("rope scaling type yarn", edit(lambda g: g.set(kv_str(f"{A}.rope.scaling.type", "yarn"))), verb="run"),
    # --- vocabulary and special ids ----------------------------------------------------
    Case("vocab_size key disagrees with the embedding",
         edit(lambda g: g.set(kv_u32(f"{A}.vocab_size", 600))), verb="run"),
    Case("token_embd has fewer rows than tokens",
         edit(lambda g: set_tensor(g, "token_embd.weight",
                                   lambda t: gb.replace(t, ne=[64, 500], data=t.data[:64 * 500 * 4]))), verb="run"),
    Case("bos id beyond the vocabulary",
         edit(lambda g: g.set(kv_u32("tokenizer.ggml.bos_token_id", 70000))), verb="run"),
    Case("eos id beyond the vocabulary",
         edit(lambda g: g.set(kv_u32("tokenizer.ggml.eos_token_id", 512))), verb="run"),
    Case("padding id beyond the vocabulary",
         edit(lambda g: g.set(kv_u32("tokenizer.ggml.padding_token_id", 1 << 31))), verb="run"),
    Case("NaN token score",
         edit(lambda g: g.set(gb.kv_f32_array("tokenizer.ggml.scores", [0.0] * 17 + [NAN] + [0.0] * 494))), verb="run"),
    Case("scores shorter than tokens",
         edit(lambda g: g.set(gb.kv_f32_array("tokenizer.ggml.scores", [0.0] * 511))), verb="run"),
    Case("no tokens", edit(lambda g: g.drop("tokenizer.ggml.tokens")), verb="run"),
    Case("no merges for gpt2", edit(lambda g: g.drop("tokenizer.ggml.merges")), verb="run"),
    Case("tokenizer model bert", edit(lambda g: g.set(kv_str("tokenizer.ggml.model", "bert"))), verb="run"),
    # --- tensors -----------------------------------------------------------------------
    Case("missing blk.1.ffn_up.weight", edit(lambda g: g.drop_tensor("blk.1.ffn_up.weight")), verb="run"),
    Case("missing output_norm.weight", edit(lambda g: g.drop_tensor("output_norm.weight")), verb="run"),
    Case("attn_q.weight of the wrong shape",
         edit(lambda g: set_tensor(g, "blk.0.attn_q.weight",
                                   lambda t: gb.replace(t, ne=[32, 128]))), verb="run"),
    Case("only some qkv biases", edit(lambda g: g.drop_tensor("blk.0.attn_v.bias")), verb="run"),
    Case("a tensor of a type apr cannot decode (I8)",
         edit(lambda g: set_tensor(g, "output_norm.weight",
                                   lambda t: gb.replace(t, ggml_type=24, data=t.data[:64]))), verb="run"),
    # --- non-finite weights ------------------------------------------------------------
    Case("every weight NaN", edit(lambda g: tensors(g, lambda t: fill_tensor(t, NAN))), verb="run"),
    Case("every weight +inf", edit(lambda g: tensors(g, lambda t: fill_tensor(t, INF))), verb="run"),
    Case("one NaN in blk.0.attn_norm",
         edit(lambda g: set_tensor(g, "blk.0.attn_norm.weight", lambda t: nan_tensor(t, 5))), verb="run"),
    Case("-inf in output_norm",
         edit(lambda g: set_tensor(g, "output_norm.weight", lambda t: nan_tensor(t, 63, -INF))), verb="run"),
    Case("NaN in the last embedding row",
         edit(lambda g: set_tensor(g, "token_embd.weight", lambda t: nan_tensor(t, -1))), verb="run"),
    Case("NaN in blk.1.ffn_down's first row",
         edit(lambda g: set_tensor(g, "blk.1.ffn_down.weight", lambda t: nan_tensor(t, 3))), verb="run"),
    Case("NaN in blk.1.attn_k.bias",
         edit(lambda g: set_tensor(g, "blk.1.attn_k.bias", lambda t: nan_tensor(t, 0))), verb="run"),
    Case("every weight of output.weight NaN",
         edit(lambda g: set_tensor(g, "output.weight", lambda t: fill_tensor(t, NAN))), verb="run"),
]


# What apr says about each case, after "apr: error: ".
EXPECTED = {
    'empty file':
        '{path}: not a GGUF file: only 0 bytes',
    'three bytes':
        '{path}: not a GGUF file: only 3 bytes',
    'bad magic':
        '{path}: not a GGUF file: bad magic 47 47 55 58 (expected 47 47 55 46)',
    'header cut at 12 bytes':
        '{path}: truncated: tensor count at byte offset 8 needs 8 bytes but the file has 12',
    'version 0':
        '{path}: unsupported GGUF version 0 (only versions 2 and 3) (byte offset 4)',
    'version 1':
        '{path}: GGUF version 1 is not supported (only versions 2 and 3) (byte offset 4)',
    'version 4':
        '{path}: unsupported GGUF version 4 (only versions 2 and 3) (byte offset 4)',
    'byte-swapped version':
        '{path}: byte-swapped version 0x03000000: big-endian GGUF files are not supported (byte '
        'offset 4)',
    'tensor count 2^40':
        '{path}: absurd counts: 1099511627776 tensors and 25 metadata pairs cannot fit in the '
        '574600 bytes that follow (byte offset 8)',
    'kv count 2^40':
        '{path}: absurd counts: 27 tensors and 1099511627776 metadata pairs cannot fit in the '
        '574600 bytes that follow (byte offset 8)',
    'negative tensor count':
        '{path}: tensor count is negative (byte offset 8)',
    'negative kv count':
        '{path}: metadata count is negative (byte offset 16)',
    'kv count one too many':
        '{path}: tensor info #0 name: string length 144115188075855872 exceeds the 1 GiB limit '
        '(byte offset 13763)',
    'tensor count one too many':
        "{path}: truncated: tensor 'output.weight' data ends at byte 574656 but the file has "
        '574624',
    'key length past the end':
        '{path}: metadata #0 key: string of 16777216 bytes runs past the end of the file (574624 '
        'bytes) (byte offset 24)',
    'key length over 1 GiB':
        '{path}: metadata #0 key: string length 1073741825 exceeds the 1 GiB limit (byte offset '
        '24)',
    'empty key':
        '{path}: metadata #1: empty key (byte offset 69)',
    'duplicate key':
        "{path}: metadata #25 'qwen2.block_count': duplicate key (byte offset 13732)",
    'value type 13':
        "{path}: metadata #25 'x': value type 13 is not a GGUF value type (byte offset 13741)",
    'array element type 13':
        "{path}: metadata #25 'x': array element type 13 is not a GGUF value type (byte offset "
        '13745)',
    'nested array':
        "{path}: metadata #25 'x': nested arrays are not supported (byte offset 13745)",
    'array count over 2^30':
        "{path}: metadata #25 'x': array length 1073741825 exceeds the limit of 2^30 elements "
        '(byte offset 13749)',
    'array longer than the file':
        "{path}: metadata #25 'x': array of 536870912 u64 runs past the end of the file (574656 "
        'bytes) (byte offset 13749)',
    'string value longer than the file':
        "{path}: metadata #25 'x' value: string length 1099511627776 exceeds the 1 GiB limit "
        '(byte offset 13745)',
    'string array element longer than the file':
        "{path}: metadata #25 'x' element 1: string of 1000000000 bytes runs past the end of the "
        'file (574656 bytes) (byte offset 13766)',
    'alignment 0':
        '{path}: general.alignment 0 is not a power of two (byte offset 13732)',
    'alignment 3':
        '{path}: general.alignment 3 is not a power of two (byte offset 13732)',
    'alignment stored as u64':
        '{path}: general.alignment has type u64, expected u32 (byte offset 13732)',
    'architecture is a number':
        "{path}: metadata key 'general.architecture' has type u32, expected string (byte offset "
        '24)',
    'tensor name of 64 bytes':
        '{path}: tensor info #25 '
        "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx': name of 64 bytes "
        'exceeds 63 (byte offset 15141)',
    'duplicate tensor name':
        "{path}: tensor info #25 'token_embd.weight': duplicate tensor name (byte offset 15141)",
    'n_dims 5':
        "{path}: tensor info #25 'output_norm.weight': n_dims 5 exceeds 4 (byte offset 15167)",
    'ne product overflows':
        "{path}: tensor info #25 'output_norm.weight': element count overflows (byte offset "
        '15179)',
    'negative ne':
        "{path}: tensor info #25 'output_norm.weight': ne[0] is negative (byte offset 15171)",
    'byte size overflows':
        "{path}: tensor info #25 'output_norm.weight': byte size overflows (byte offset 15167)",
    'ggml type 4 (removed)':
        "{path}: tensor info #25 'output_norm.weight': type id 4 is not a valid ggml type (byte "
        'offset 15179)',
    'ggml type 99':
        "{path}: tensor info #25 'output_norm.weight': type id 99 is not a valid ggml type (byte "
        'offset 15179)',
    'ne[0] not a multiple of the block size':
        "{path}: tensor info #25 'output_norm.weight': ne[0] = 48 is not a multiple of the Q4_0 "
        'block size 32 (byte offset 15167)',
    'misaligned tensor offset':
        "{path}: tensor info #25 'output_norm.weight': data offset 16 is not a multiple of the "
        'alignment 32 (byte offset 15183)',
    'tensors overlap':
        "{path}: tensors 'token_embd.weight' and 'output_norm.weight' overlap in the data "
        'section (byte offset 15264)',
    'offset far past the end':
        "{path}: truncated: tensor 'output_norm.weight' data ends at byte 1099511643296 but the "
        'file has 574624',
    'offset near 2^64':
        "{path}: truncated: tensor 'output_norm.weight' data ends at byte beyond 2^64 but the "
        'file has 574624',
    'last tensor cut short':
        "{path}: truncated: tensor 'output.weight' data ends at byte 574624 but the file has "
        '574623',
    'file cut in the metadata':
        "{path}: truncated: metadata #17 'tokenizer.ggml.tokens' element 327 length at byte "
        'offset 4000 needs 8 bytes but the file has 4000',
    'file cut in the tensor directory':
        "{path}: truncated: tensor info #13 'blk.1.attn_norm.weight': ne[0] at byte offset 14499 "
        'needs 8 bytes but the file has 14500',
    'no general.architecture':
        "{name}: metadata 'general.architecture' is missing",
    'architecture gpt9':
        "{name}: architecture 'gpt9' is not supported (apr runs llama, qwen2, qwen3, gemma2, gemma3, phi3)",
    'no embedding_length':
        "{name}: metadata 'qwen2.embedding_length': required key is missing",
    'block_count 0':
        "{name}: metadata 'qwen2.block_count': value 0 is out of range",
    'block_count 2^31':
        "{name}: metadata 'qwen2.block_count': value 2147483648 is out of range",
    'block_count is a string':
        "{path}: metadata key 'qwen2.block_count' has type string, expected an unsigned integer "
        '(byte offset 312)',
    'head_count_kv does not divide head_count':
        "{name}: metadata 'qwen2.attention.head_count_kv': 4 heads are not a multiple of 3 KV "
        'heads',
    'odd rope.dimension_count':
        "{name}: metadata 'qwen2.rope.dimension_count': 15 must be even and at most head_dim 16",
    'no rms epsilon':
        "{name}: metadata 'qwen2.attention.layer_norm_rms_epsilon': required key is missing",
    'rms epsilon NaN':
        "{name}: metadata 'qwen2.attention.layer_norm_rms_epsilon': nan is not in (0, 1)",
    'rms epsilon inf':
        "{name}: metadata 'qwen2.attention.layer_norm_rms_epsilon': inf is not in (0, 1)",
    'rms epsilon 0':
        "{name}: metadata 'qwen2.attention.layer_norm_rms_epsilon': 0 is not in (0, 1)",
    'rope.freq_base inf':
        "{name}: metadata 'qwen2.rope.freq_base': inf is not a finite number > 1 that a float "
        'can hold',
    'rope.freq_base NaN':
        "{name}: metadata 'qwen2.rope.freq_base': nan is not a finite number > 1 that a float "
        'can hold',
    'rope.freq_base 1e39 as f64 (infinite as f32)':
        "{name}: metadata 'qwen2.rope.freq_base': 1e+39 is not a finite number > 1 that a float "
        'can hold',
    'rope.freq_base 0.5':
        "{name}: metadata 'qwen2.rope.freq_base': 0.5 is not a finite number > 1 that a float "
        'can hold',
    'rope scaling factor inf':
        "{name}: metadata 'qwen2.rope.scaling.factor': inf is not a finite positive number",
    'rope scaling type yarn':
        "{name}: metadata 'qwen2.rope.scaling.type': 'yarn' RoPE scaling is not supported (none "
        'and linear are)',
    'vocab_size key disagrees with the embedding':
        "{name}: metadata 'qwen2.vocab_size' is 600 but tokenizer.ggml.tokens and "
        'token_embd.weight have 512 tokens; use --force to load it anyway',
    'token_embd has fewer rows than tokens':
        "{name}: tensor 'token_embd.weight' has 500 rows but tokenizer.ggml.tokens has 512 tokens",
    'bos id beyond the vocabulary':
        "{name}: metadata 'tokenizer.ggml.bos_token_id' is 70000, beyond the vocabulary of 512 "
        'tokens; use --force to load it anyway',
    'eos id beyond the vocabulary':
        "{name}: metadata 'tokenizer.ggml.eos_token_id' is 512, beyond the vocabulary of 512 "
        'tokens; use --force to load it anyway',
    'padding id beyond the vocabulary':
        "{name}: metadata 'tokenizer.ggml.padding_token_id' is 2147483648, beyond the vocabulary "
        'of 512 tokens; use --force to load it anyway',
    'NaN token score':
        '{name}: tokenizer.ggml.scores[17] is NaN; use --force to load it anyway',
    'scores shorter than tokens':
        '{path}: tokenizer.ggml.scores: 511 entries for 512 tokens',
    'no tokens':
        '{path}: tokenizer.ggml.tokens: missing',
    'no merges for gpt2':
        '{path}: tokenizer.ggml.merges: missing (required by tokenizer model gpt2)',
    'tokenizer model bert':
        "{path}: tokenizer.ggml.model: unsupported tokenizer model 'bert' (supported: gpt2, "
        'llama)',
    'missing blk.1.ffn_up.weight':
        "{name}: tensor 'blk.1.ffn_up.weight' is missing",
    'missing output_norm.weight':
        "{name}: tensor 'output_norm.weight' is missing",
    'attn_q.weight of the wrong shape':
        "{name}: tensor 'blk.0.attn_q.weight' has shape [32, 128], expected [64, 64]",
    'only some qkv biases':
        '{name}: layer 0 has some but not all of attn_q/k/v.bias',
    'a tensor of a type apr cannot decode (I8)':
        "{name}: tensor 'output_norm.weight' has type I8, which apr cannot decode (supported: "
        'F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K)',
    'every weight NaN':
        "{name}: tensor 'token_embd.weight' holds NaN at element 0 (weights must be finite); use "
        '--force to load it anyway',
    'every weight +inf':
        "{name}: tensor 'token_embd.weight' holds +inf at element 0 (weights must be finite); "
        'use --force to load it anyway',
    'one NaN in blk.0.attn_norm':
        "{name}: tensor 'blk.0.attn_norm.weight' holds NaN at element 5 (weights must be "
        'finite); use --force to load it anyway',
    '-inf in output_norm':
        "{name}: tensor 'output_norm.weight' holds -inf at element 63 (weights must be finite); "
        'use --force to load it anyway',
    'NaN in the last embedding row':
        "{name}: tensor 'token_embd.weight' holds NaN at element 32767 (weights must be finite); "
        'use --force to load it anyway',
    "NaN in blk.1.ffn_down's first row":
        "{name}: tensor 'blk.1.ffn_down.weight' holds NaN at element 3 (weights must be finite); "
        'use --force to load it anyway',
    'NaN in blk.1.attn_k.bias':
        "{name}: tensor 'blk.1.attn_k.bias' holds NaN at element 0 (weights must be finite); use "
        '--force to load it anyway',
    'every weight of output.weight NaN':
        "{name}: tensor 'output.weight' holds NaN at element 0 (weights must be finite); use "
        '--force to load it anyway',
}

for _case in CASES:
    _case.expected = EXPECTED[_case.name]
