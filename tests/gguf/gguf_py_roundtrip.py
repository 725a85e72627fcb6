# SPDX-License-Identifier: MIT
"""Writes a GGUF file with gguf-py's GGUFWriter and a manifest of what gguf-py's GGUFReader sees.

Usage: gguf_py_roundtrip.py OUT.gguf OUT.manifest

The manifest is line based so the C++ test can parse it without a JSON library:
  alignment N | data_offset N | kv_count N | tensor_count N
  kv KEY TYPE ELEMTYPE COUNT VALUES     (ELEMTYPE/COUNT are - for scalars; VALUES comma separated,
                                          numbers as Python repr, strings as hex, - if empty)
  tensor NAME TYPE N_DIMS NE0 .. NEk ABS_OFFSET NBYTES BYTE_SUM   (sum of the data bytes)
"""
import sys

import numpy as np
import gguf


def write(path: str) -> None:
    rng = np.random.default_rng(1234)
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 250)
    w.add_int8("t.i8", -5)
    w.add_uint16("t.u16", 65000)
    w.add_int16("t.i16", -300)
    w.add_uint32("qwen2.block_count", 2)
    w.add_int32("t.i32", -70000)
    w.add_float32("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_uint64("t.u64", 2**40 + 3)
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", 0.1)
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_array("tokenizer.ggml.tokens", ["a", "\u0120the", "<|im_end|>", ""])
    w.add_array("tokenizer.ggml.token_type", [1, 1, 3, 5])
    w.add_array("tokenizer.ggml.scores", [0.5, -1.25, 0.0, 3.0])
    # A float32 matrix, an f16 vector, a raw Q8_0 matrix and an F32 bias, in gguf-py's layout.
    w.add_tensor("token_embd.weight", rng.standard_normal((4, 64)).astype(np.float32))
    w.add_tensor("output_norm.weight", rng.standard_normal(96).astype(np.float16))
    q8 = rng.integers(0, 256, size=(3, 2 * 34), dtype=np.uint8)
    q8[:, 1::34] = 0x20  # fp16 scale high bytes: finite, modest
    w.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_q.bias", rng.standard_normal(3).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def render(value, is_string: bool) -> str:
    if is_string:
        return value.encode("utf-8").hex()
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(value)


def manifest(path: str, out: str) -> None:
    r = gguf.GGUFReader(path)
    lines = [f"alignment {r.alignment}", f"data_offset {r.data_offset}"]
    fields = [f for f in r.fields.values() if not f.name.startswith("GGUF.")]
    lines.append(f"kv_count {len(fields)}")
    lines.append(f"tensor_count {len(r.tensors)}")
    for f in fields:
        main = f.types[0]
        if main == gguf.GGUFValueType.ARRAY:
            sub = f.types[-1]
            values = f.contents()
            text = ",".join(render(v, sub == gguf.GGUFValueType.STRING) for v in values) or "-"
            lines.append(f"kv {f.name} {int(main)} {int(sub)} {len(values)} {text}")
        else:
            text = render(f.contents(), main == gguf.GGUFValueType.STRING) or "-"
            lines.append(f"kv {f.name} {int(main)} - - {text}")
    for t in r.tensors:
        dims = " ".join(str(int(d)) for d in t.shape)
        raw = np.frombuffer(t.data.tobytes(), dtype=np.uint8)
        lines.append(f"tensor {t.name} {int(t.tensor_type)} {len(t.shape)} {dims} "
                     f"{t.data_offset} {t.n_bytes} {int(raw.astype(np.uint64).sum())}")
    with open(out, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    write(sys.argv[1])
    manifest(sys.argv[1], sys.argv[2])
