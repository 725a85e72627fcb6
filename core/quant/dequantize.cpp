// SPDX-License-Identifier: MIT
// Block decoders for the 13 supported types. Every product below is exact in f32 (fp16
// significands have 11 bits and the integer factors are small), so the only rounding is the final
// add of a min, which makes the results bit-identical with ggml whatever the evaluation order.
#include "quant/dequantize.hpp"

#include <cstring>
#include <string>

#include "common/error.hpp"
#include "quant/half.hpp"
#include "quant/types.hpp"

namespace apr::quant {
namespace {

float half_at(const uint8_t* p) {
  return fp16_to_f32(uint16_t(p[0] | p[1] << 8));
}

uint32_t u32_at(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// 32-element blocks: byte j of qs holds element j in its low nibble and element j+16 in its high.
void block_q4_0(const uint8_t* p, float* y) {
  const float d = half_at(p);
  const uint8_t* qs = p + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = float((qs[j] & 15) - 8) * d;
    y[j + 16] = float((qs[j] >> 4) - 8) * d;
  }
}

void block_q4_1(const uint8_t* p, float* y) {
  const float d = half_at(p), m = half_at(p + 2);
  const uint8_t* qs = p + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = float(qs[j] & 15) * d + m;
    y[j + 16] = float(qs[j] >> 4) * d + m;
  }
}

void block_q5_0(const uint8_t* p, float* y) {
  const float d = half_at(p);
  const uint32_t qh = u32_at(p + 2);
  const uint8_t* qs = p + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 15) | int((qh >> j) & 1) << 4;
    const int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
    y[j] = float(lo - 16) * d;
    y[j + 16] = float(hi - 16) * d;
  }
}

void block_q5_1(const uint8_t* p, float* y) {
  const float d = half_at(p), m = half_at(p + 2);
  const uint32_t qh = u32_at(p + 4);
  const uint8_t* qs = p + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 15) | int((qh >> j) & 1) << 4;
    const int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
    y[j] = float(lo) * d + m;
    y[j + 16] = float(hi) * d + m;
  }
}

void block_q8_0(const uint8_t* p, float* y) {
  const float d = half_at(p);
  for (int j = 0; j < 32; ++j) y[j] = float(int8_t(p[2 + j])) * d;
}

// K-quants: 256 elements in two halves of 128; within a half, four groups of 32 share the bytes
// of one 32-byte slice of qs, each group taking the next 2-bit field.
void block_q2_k(const uint8_t* p, float* y) {
  const uint8_t* scales = p;
  const uint8_t* qs = p + 16;
  const float d = half_at(p + 80), dmin = half_at(p + 82);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      for (int l = 0; l < 32; ++l) {
        const int e = 128 * h + 32 * s + l;
        const uint8_t sc = scales[e / 16];
        const int q = (qs[32 * h + l] >> (2 * s)) & 3;
        y[e] = d * float(sc & 15) * float(q) - dmin * float(sc >> 4);
      }
    }
  }
}

void block_q3_k(const uint8_t* p, float* y) {
  const uint8_t* hmask = p;
  const uint8_t* qs = p + 32;
  const uint8_t* packed = p + 96;
  const float d = half_at(p + 108);
  // 16 signed 6-bit scales: low nibbles in bytes 0..7, the two high bits of scales k, k+4, k+8
  // and k+12 in byte 8+k.
  int scale[16];
  for (int i = 0; i < 16; ++i) {
    const int low4 = i < 8 ? (packed[i] & 15) : (packed[i - 8] >> 4);
    const int high2 = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    scale[i] = (low4 | high2 << 4) - 32;
  }
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      for (int l = 0; l < 32; ++l) {
        const int e = 128 * h + 32 * s + l;
        const int lo = (qs[32 * h + l] >> (2 * s)) & 3;
        const bool high_bit = (hmask[l] >> (4 * h + s)) & 1;  // set means no -4 offset
        y[e] = d * float(scale[e / 16]) * float(lo - (high_bit ? 0 : 4));
      }
    }
  }
}

// The 6-bit scales and mins of the 8 sub-blocks of Q4_K and Q5_K, packed in 12 bytes.
void unpack_scale_min_k4(const uint8_t* packed, int* scale, int* min) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scale[j] = packed[j] & 63;
      min[j] = packed[j + 4] & 63;
    } else {
      scale[j] = (packed[j + 4] & 15) | (packed[j - 4] >> 6) << 4;
      min[j] = (packed[j + 4] >> 4) | (packed[j] >> 6) << 4;
    }
  }
}

// Q4_K when qh is null, Q5_K otherwise: each 32-byte slice of qs holds 64 elements, the low
// nibbles first.
void block_q4_q5_k(const uint8_t* p, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = half_at(p), dmin = half_at(p + 2);
  int scale[8], min[8];
  unpack_scale_min_k4(p + 4, scale, min);
  for (int c = 0; c < 4; ++c) {
    for (int half = 0; half < 2; ++half) {
      const int j = 2 * c + half;
      const float dl = d * float(scale[j]), ml = dmin * float(min[j]);
      for (int l = 0; l < 32; ++l) {
        int q = half == 0 ? (qs[32 * c + l] & 15) : (qs[32 * c + l] >> 4);
        if (qh) q += 16 * ((qh[l] >> j) & 1);
        y[32 * j + l] = dl * float(q) - ml;
      }
    }
  }
}

void block_q4_k(const uint8_t* p, float* y) {
  block_q4_q5_k(p, nullptr, p + 16, y);
}
void block_q5_k(const uint8_t* p, float* y) {
  block_q4_q5_k(p, p + 16, p + 48, y);
}

void block_q6_k(const uint8_t* p, float* y) {
  const uint8_t* ql = p;
  const uint8_t* qh = p + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(p + 192);
  const float d = half_at(p + 208);
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 32; ++l) {
        const int e = 128 * h + 32 * k + l;
        const uint8_t low_byte = ql[64 * h + l + 32 * (k & 1)];
        const int low4 = k < 2 ? (low_byte & 15) : (low_byte >> 4);
        const int high2 = (qh[32 * h + l] >> (2 * k)) & 3;
        y[e] = d * float(scales[e / 16]) * float((low4 | high2 << 4) - 32);
      }
    }
  }
}

using BlockDecoder = void (*)(const uint8_t*, float*);

BlockDecoder block_decoder(uint32_t type) {
  switch (type) {
    case kQ4_0:
      return block_q4_0;
    case kQ4_1:
      return block_q4_1;
    case kQ5_0:
      return block_q5_0;
    case kQ5_1:
      return block_q5_1;
    case kQ8_0:
      return block_q8_0;
    case kQ2_K:
      return block_q2_k;
    case kQ3_K:
      return block_q3_k;
    case kQ4_K:
      return block_q4_k;
    case kQ5_K:
      return block_q5_k;
    case kQ6_K:
      return block_q6_k;
    default:
      return nullptr;
  }
}

}  // namespace

void dequantize_row(uint32_t type, const void* src, float* dst, uint64_t n) {
  const TypeInfo* info = type_info(type);
  if (!info || !info->supported) {
    throw Error("cannot dequantize ggml type " + type_name(type) + ": not supported by apr");
  }
  if (n % info->block_size != 0) {
    throw Error("cannot dequantize " + std::to_string(n) + " elements of " + info->name +
                ": not a whole number of blocks of " + std::to_string(info->block_size));
  }
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (type) {
    case kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case kF16:
      for (uint64_t i = 0; i < n; ++i) dst[i] = half_at(bytes + 2 * i);
      return;
    case kBF16:
      for (uint64_t i = 0; i < n; ++i)
        dst[i] = bf16_to_f32(uint16_t(bytes[2 * i] | bytes[2 * i + 1] << 8));
      return;
  }
  const BlockDecoder decode = block_decoder(type);
  const uint64_t blocks = n / info->block_size;
  for (uint64_t b = 0; b < blocks; ++b) {
    decode(bytes + b * info->type_size, dst + b * info->block_size);
  }
}

}  // namespace apr::quant
