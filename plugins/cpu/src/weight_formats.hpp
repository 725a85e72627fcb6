// SPDX-License-Identifier: MIT
// The ggml weight encodings this plugin decodes: block geometry and per-block decoders.
#pragma once

#include <apr/plugin.h>

#include <cstddef>
#include <cstdint>

namespace apr_cpu {

struct WeightFormat {
  apr_type type;
  const char* name;
  uint32_t block_elems;
  uint32_t block_bytes;
};

// nullptr when the type is not one of the 13 supported ones.
const WeightFormat* find_weight_format(apr_type type);
// A printable name for any type id, supported or not.
const char* weight_type_name(apr_type type);

// IEEE binary16 -> binary32, exact (subnormals, Inf and NaN preserved).
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0x1Fu) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal half: renormalise into a normal float.
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3FFu) << 13);
  }
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
}

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t load_u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}
inline float load_half(const uint8_t* p) {
  return half_to_float(load_u16(p));
}

// Q4_K/Q5_K 6-bit scale and min of sub-block j from the block's 12 scale bytes S (ggml's
// get_scale_min_k4).
inline void k4_scale_min(int j, const uint8_t* S, int& sc, int& m) {
  if (j < 4) {
    sc = S[j] & 63;
    m = S[j + 4] & 63;
  } else {
    sc = (S[j + 4] & 15) | ((S[j - 4] >> 6) << 4);
    m = (S[j + 4] >> 4) | ((S[j] >> 6) << 4);
  }
}

}  // namespace apr_cpu
