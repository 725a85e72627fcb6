// SPDX-License-Identifier: MIT
// The ggml weight encodings this plugin decodes (every type the ABI names; block geometry from the
// kit's one table) and the small helpers the block decoders share.
#pragma once

#include <apr/plugin.h>
#include <apr/kit/names.hpp>

#include <cstddef>
#include <cstdint>

namespace apr_cpu {

using WeightFormat = apr_sdk::WeightType;

// nullptr when the type is not one this plugin decodes.
inline const WeightFormat* find_weight_format(apr_type type) {
  return apr_sdk::is_abi_weight_type(type) ? apr_sdk::weight_type(type) : nullptr;
}

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
