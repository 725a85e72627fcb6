// SPDX-License-Identifier: MIT
// Activations quantized to 8 bits in blocks of 32 (one f32 scale per block), so that the decode
// matmul of the 32-element weight types can multiply integers: llama.cpp's Q8_0/Q8_1 idea.
// Quantizing x changes results; the bound is stated where the kernels are tested
// (tests/cpu/test_q8_matmul.cpp). APR_CPU_ACT (matmul.cpp) selects where it is used.
#pragma once

#include <apr/plugin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace apr_cpu {

struct BlockQ8 {
  float d;      // x[i] ~ d * q[i]
  int32_t sum;  // sum of q[i], for the weight types with an offset (Q4_0 -8, Q4_1/Q5_1 min)
  int8_t q[32];
};

// The weight types with an integer-dot decode kernel.
inline bool q8_supported(apr_type type) {
  return type == APR_TYPE_Q4_0 || type == APR_TYPE_Q4_1 || type == APR_TYPE_Q5_0 ||
         type == APR_TYPE_Q5_1 || type == APR_TYPE_Q8_0;
}

// max |x_i| over one block of 32, written without fmax (a library call) so that it vectorises.
inline float block_absmax(const float* xb) {
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) {
    const float a = std::fabs(xb[i]);
    amax = a > amax ? a : amax;
  }
  return amax;
}

// v rounded to an integer, to nearest with ties to even, for |v| < 2^22, without a library call
// (nearbyint): adding and then subtracting 1.5 * 2^23 does it in the default rounding mode.
inline float round_to_int(float v) {
  constexpr float kRound = 12582912.0f;
  return (v + kRound) - kRound;
}

// n is a multiple of 32. Round to nearest (ties to even), d = max|x| / 127, so |x - d q| <= d / 2.
// One portable implementation for every instruction set: the same x quantizes the same way.
inline void quantize_q8(const float* x, BlockQ8* out, size_t n) {
  for (size_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    const float d = block_absmax(xb) / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      float v = round_to_int(xb[i] * id);
      v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
      out[b].q[i] = static_cast<int8_t>(v);
      sum += out[b].q[i];
    }
    out[b].d = d;
    out[b].sum = sum;
  }
}

}  // namespace apr_cpu
