// SPDX-License-Identifier: MIT
// Device-side decoding of GGUF weight rows, 16 elements at a time (block layouts: ggml's, as in
// docs GGUF-FACTS §2). Every quantized block size (32, 256) is a multiple of 16, so a 16-element
// chunk never straddles two blocks; the float types decode element-wise with a bound check.
//
// The header also compiles as plain C++ so tests/cuda can check the decoder on machines without
// a GPU.
#pragma once

#include <cstdint>
#include <cstring>

#include "apr/plugin.h"

#ifdef __CUDACC__
#define APR_DECODE_FN __host__ __device__ __forceinline__
#else
#define APR_DECODE_FN inline
#endif
// Only the device pass: the host compiler warns about a pragma it does not know.
#ifdef __CUDA_ARCH__
#define APR_UNROLL _Pragma("unroll")
#else
#define APR_UNROLL
#endif

namespace apr_cuda {

constexpr uint32_t kChunk = 16;

APR_DECODE_FN float bits_to_float(uint32_t bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
#endif
}

APR_DECODE_FN float half_bits_to_float(uint16_t bits) {
#ifdef __CUDA_ARCH__
  float f;
  // The hardware conversion is exact for every fp16 value, subnormals, Inf and NaN included.
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
  return f;
#else
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exp = (bits >> 10) & 0x1fu, man = bits & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in f32
    const float mag = static_cast<float>(man) * 5.9604644775390625e-08f;
    return sign ? -mag : mag;
  }
  if (exp == 31) return bits_to_float(sign | 0x7f800000u | (man << 13));
  return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
#endif
}

// Quantized blocks are only 2-byte aligned (e.g. 18-byte Q4_0), so fp16 fields are read bytewise.
APR_DECODE_FN float load_half(const uint8_t* p) {
  return half_bits_to_float(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

template <uint32_t Type>
struct BlockTraits;

template <>
struct BlockTraits<APR_TYPE_F32> {
  static constexpr uint32_t kElems = 1, kBytes = 4;
};
template <>
struct BlockTraits<APR_TYPE_F16> {
  static constexpr uint32_t kElems = 1, kBytes = 2;
};
template <>
struct BlockTraits<APR_TYPE_BF16> {
  static constexpr uint32_t kElems = 1, kBytes = 2;
};
template <>
struct BlockTraits<APR_TYPE_Q4_0> {
  static constexpr uint32_t kElems = 32, kBytes = 18;
};
template <>
struct BlockTraits<APR_TYPE_Q4_1> {
  static constexpr uint32_t kElems = 32, kBytes = 20;
};
template <>
struct BlockTraits<APR_TYPE_Q5_0> {
  static constexpr uint32_t kElems = 32, kBytes = 22;
};
template <>
struct BlockTraits<APR_TYPE_Q5_1> {
  static constexpr uint32_t kElems = 32, kBytes = 24;
};
template <>
struct BlockTraits<APR_TYPE_Q8_0> {
  static constexpr uint32_t kElems = 32, kBytes = 34;
};
template <>
struct BlockTraits<APR_TYPE_Q2_K> {
  static constexpr uint32_t kElems = 256, kBytes = 84;
};
template <>
struct BlockTraits<APR_TYPE_Q3_K> {
  static constexpr uint32_t kElems = 256, kBytes = 110;
};
template <>
struct BlockTraits<APR_TYPE_Q4_K> {
  static constexpr uint32_t kElems = 256, kBytes = 144;
};
template <>
struct BlockTraits<APR_TYPE_Q5_K> {
  static constexpr uint32_t kElems = 256, kBytes = 176;
};
template <>
struct BlockTraits<APR_TYPE_Q6_K> {
  static constexpr uint32_t kElems = 256, kBytes = 210;
};

// Decodes row elements [k0, k0 + 16) into out; k0 is a multiple of 16. Elements at or past
// n_cols (possible only for the float types) come out as 0.
template <uint32_t Type>
APR_DECODE_FN void decode_chunk(const uint8_t* row, uint64_t n_cols, uint64_t k0, float* out) {
  using Traits = BlockTraits<Type>;
  if constexpr (Traits::kElems == 1) {
    APR_UNROLL
    for (uint32_t i = 0; i < kChunk; ++i) {
      const uint64_t k = k0 + i;
      float v = 0.0f;
      if (k < n_cols) {
        if constexpr (Type == APR_TYPE_F32) {
          v = reinterpret_cast<const float*>(row)[k];
        } else if constexpr (Type == APR_TYPE_F16) {
          v = half_bits_to_float(reinterpret_cast<const uint16_t*>(row)[k]);
        } else {
          v = bits_to_float(static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(row)[k]) << 16);
        }
      }
      out[i] = v;
    }
  } else {
    (void)n_cols;
    const uint8_t* b = row + (k0 / Traits::kElems) * Traits::kBytes;
    const uint32_t e0 = static_cast<uint32_t>(k0 % Traits::kElems);  // first element in block
    if constexpr (Type == APR_TYPE_Q4_0 || Type == APR_TYPE_Q4_1) {
      const float d = load_half(b);
      const float m = Type == APR_TYPE_Q4_1 ? load_half(b + 2) : 0.0f;
      const uint8_t* qs = b + (Type == APR_TYPE_Q4_1 ? 4 : 2);
      const uint32_t shift = e0 == 0 ? 0 : 4;  // elements 16..31 are the high nibbles
      APR_UNROLL
      for (uint32_t i = 0; i < kChunk; ++i) {
        const int n = (qs[i] >> shift) & 15;
        out[i] =
            Type == APR_TYPE_Q4_1 ? static_cast<float>(n) * d + m : static_cast<float>(n - 8) * d;
      }
    } else if constexpr (Type == APR_TYPE_Q5_0 || Type == APR_TYPE_Q5_1) {
      constexpr bool kHasMin = Type == APR_TYPE_Q5_1;
      const float d = load_half(b);
      const float m = kHasMin ? load_half(b + 2) : 0.0f;
      const uint8_t* qh_bytes = b + (kHasMin ? 4 : 2);
      const uint32_t qh = qh_bytes[0] | (qh_bytes[1] << 8) | (qh_bytes[2] << 16) |
                          (static_cast<uint32_t>(qh_bytes[3]) << 24);
      const uint8_t* qs = qh_bytes + 4;
      const uint32_t shift = e0 == 0 ? 0 : 4;
      APR_UNROLL
      for (uint32_t i = 0; i < kChunk; ++i) {
        const int q = ((qs[i] >> shift) & 15) | (((qh >> (e0 + i)) & 1) << 4);
        out[i] = kHasMin ? static_cast<float>(q) * d + m : static_cast<float>(q - 16) * d;
      }
    } else if constexpr (Type == APR_TYPE_Q8_0) {
      const float d = load_half(b);
      const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2) + e0;
      APR_UNROLL
      for (uint32_t i = 0; i < kChunk; ++i) out[i] = static_cast<float>(qs[i]) * d;
    } else if constexpr (Type == APR_TYPE_Q2_K) {
      const uint32_t j = e0 / 16, h = e0 / 128, shift = 2 * ((e0 % 128) / 32), l0 = e0 % 32;
      const uint8_t sc = b[j];
      const float dl = load_half(b + 80) * static_cast<float>(sc & 15);
      const float ml = load_half(b + 82) * static_cast<float>(sc >> 4);
      const uint8_t* qs = b + 16 + 32 * h + l0;
      APR_UNROLL
      for (uint32_t i = 0; i < kChunk; ++i) {
        out[i] = dl * static_cast<float>((qs[i] >> shift) & 3) - ml;
      }
    } else if constexpr (Type == APR_TYPE_Q3_K) {
      const uint32_t j = e0 / 16, h = e0 / 128, shift = 2 * ((e0 % 128) / 32), l0 = e0 % 32;
      const uint32_t hbit = e0 / 32;
      const uint8_t* hmask = b + l0;
      const uint8_t* qs = b + 32 + 32 * h + l0;
      const uint8_t* s = b + 96;
      const int low4 = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
      const int high2 = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
      const float dl = load_half(b + 108) * static_cast<float>((low4 | (high2 << 4)) - 32);
      APR_UNROLL
      for (uint32_t i = 0; i < kChunk; ++i) {
        const int lo = (qs[i] >> shift) & 3;
        const int q = lo - (((hmask[i] >> hbit) & 1) ? 0 : 4);
        out[i] = dl * static_cast<float>(q);
      }
    } else if constexpr (Type == APR_TYPE_Q4_K || Type == APR_TYPE_Q5_K) {
      constexpr bool kHasHigh = Type == APR_TYPE_Q5_K;
      const uint8_t* s = b + 4;
      const uint32_t j = e0 / 32;
      int sc, mn;
      if (j < 4) {
        sc = s[j] & 63;
        mn = s[j + 4] & 63;
      } else {
        sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
      }
      const float dl = load_half(b) * static_cast<float>(sc);
      const float ml = load_half(b + 2) * static_cast<float>(mn);
      const uint32_t c = e0 / 64, r0 = e0 % 64;
      const uint8_t* qs = b + (kHasHigh ? 48 : 16) + 32 * c + r0 % 32;
      const uint32_t shift = r0 < 32 ? 0 : 4;
      const uint8_t* qh = b + 16 + r0 % 32;  // Q5_K only: bit e/32 of qh[e % 32]
      const uint32_t hbit = e0 / 32;
      APR_UNROLL
      for (uint32_t i = 0; i < kChunk; ++i) {
        int q = (qs[i] >> shift) & 15;
        if constexpr (kHasHigh) q += ((qh[i] >> hbit) & 1) << 4;
        out[i] = dl * static_cast<float>(q) - ml;
      }
    } else if constexpr (Type == APR_TYPE_Q6_K) {
      const uint32_t h = e0 / 128, r0 = e0 % 128, k = r0 / 32, l0 = r0 % 32;
      const uint8_t* ql = b + 64 * h + 32 * (k & 1) + l0;
      const uint8_t* qh = b + 128 + 32 * h + l0;
      const uint32_t low_shift = k < 2 ? 0 : 4, high_shift = 2 * k;
      const float dl = load_half(b + 208) *
                       static_cast<float>(reinterpret_cast<const int8_t*>(b + 192)[e0 / 16]);
      APR_UNROLL
      for (uint32_t i = 0; i < kChunk; ++i) {
        const int q = (((ql[i] >> low_shift) & 15) | (((qh[i] >> high_shift) & 3) << 4)) - 32;
        out[i] = dl * static_cast<float>(q);
      }
    }
  }
}

}  // namespace apr_cuda
