# SPDX-License-Identifier: MIT
"""A GGUF byte writer that can also write what no valid writer would: every count, type, offset
and length is the caller's to choose. Valid models are read with gguf-py (the format's own
package) and re-encoded field by field, so a malformed case differs from a real model in exactly
one place."""

import struct
from dataclasses import dataclass, field, replace

import numpy as np

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0 = 0, 1, 2, 8


def u32(v: int) -> bytes:
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def gstr(s) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return u64(len(b)) + b


@dataclass
class KV:
    key: str
    vtype: int
    value: bytes  # the encoded value after the type field (arrays: element type, count, items)


def kv_u32(key, v):
    return KV(key, U32, u32(v))


def kv_i32(key, v):
    return KV(key, I32, struct.pack("<i", v))


def kv_f32(key, v):
    return KV(key, F32, struct.pack("<f", v))


def kv_f64(key, v):
    return KV(key, F64, struct.pack("<d", v))


def kv_str(key, s):
    return KV(key, STRING, gstr(s))


def kv_f32_array(key, values):
    return KV(key, ARRAY, u32(F32) + u64(len(values)) + np.asarray(values, "<f4").tobytes())


def kv_str_array(key, items):
    return KV(key, ARRAY, u32(STRING) + u64(len(items)) + b"".join(gstr(s) for s in items))


@dataclass
class Tensor:
    name: str
    ne: list  # ne[0] first, as stored
    ggml_type: int
    data: bytes
    offset: int | None = None  # None: laid out in order with the alignment


@dataclass
class Gguf:
    kvs: list = field(default_factory=list)
    tensors: list = field(default_factory=list)
    magic: bytes = b"GGUF"
    version: int = 3
    alignment: int = 32
    n_tensors: int | None = None  # None: the real count
    n_kv: int | None = None

    def copy(self) -> "Gguf":
        return replace(self, kvs=[replace(k) for k in self.kvs],
                       tensors=[replace(t, ne=list(t.ne)) for t in self.tensors])

    def kv(self, key: str) -> KV:
        return next(k for k in self.kvs if k.key == key)

    def set(self, new: KV) -> "Gguf":
        for i, k in enumerate(self.kvs):
            if k.key == new.key:
                self.kvs[i] = new
                return self
        self.kvs.append(new)
        return self

    def drop(self, key: str) -> "Gguf":
        self.kvs = [k for k in self.kvs if k.key != key]
        return self

    def tensor(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t.name == name)

    def drop_tensor(self, name: str) -> "Gguf":
        self.tensors = [t for t in self.tensors if t.name != name]
        return self

    def build(self) -> bytes:
        out = bytearray(self.magic + u32(self.version))
        out += u64(len(self.tensors) if self.n_tensors is None else self.n_tensors)
        out += u64(len(self.kvs) if self.n_kv is None else self.n_kv)
        for k in self.kvs:
            out += gstr(k.key) + u32(k.vtype) + k.value
        offsets, pos = [], 0
        for t in self.tensors:
            pos = -(-pos // self.alignment) * self.alignment
            offsets.append(pos if t.offset is None else t.offset)
            pos += len(t.data)
        for t, off in zip(self.tensors, offsets):
            out += gstr(t.name) + u32(len(t.ne)) + b"".join(u64(d) for d in t.ne)
            out += u32(t.ggml_type) + u64(off)
        out += bytes(-len(out) % self.alignment)
        data_start = len(out)
        for t, off in zip(self.tensors, offsets):
            end = data_start + off
            if t.offset is not None and not 0 <= off <= len(out) + (1 << 20):
                continue  # an offset far beyond the data: the file simply ends before it
            if end > len(out):
                out += bytes(end - len(out))
            out[end:end + len(t.data)] = t.data
        return bytes(out)


def from_file(path) -> Gguf:
    """Re-encodes a valid file (read with gguf-py) as a Gguf; build() gives the same bytes."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    g = Gguf()
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        raw = b"".join(bytes(p.tobytes()) for p in f.parts)
        key_len = struct.unpack_from("<Q", raw, 0)[0]
        vtype = struct.unpack_from("<I", raw, 8 + key_len)[0]
        g.kvs.append(KV(f.name, vtype, raw[12 + key_len:]))
        if f.name == "general.alignment":
            g.alignment = int(f.parts[-1][0])
    for t in r.tensors:
        g.tensors.append(Tensor(t.name, [int(d) for d in t.shape], int(t.tensor_type),
                                bytes(t.data.tobytes())))
    return g


def f32_bytes(values) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()
