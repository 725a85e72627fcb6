// SPDX-License-Identifier: MIT
// Activations quantized to 16 bits in blocks of 32 (one f32 scale per block) for the integer
// kernels on repacked weights (isa_packed_impl.hpp), the cpu plugin's default for block-quantized
// weights. |x - d q| <= d / 2 with d = max|x_b| / 32767: 258 times finer than 8 bits, so results
// stay within a few 1e-5 of the f32 computation (the bound is stated and tested in
// tests/cpu/test_q8_matmul.cpp) while the products are still exact integer arithmetic (vpdpwssd
// on pairs of 16-bit values, or vpdpbusd on the values split into two bytes).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "q8_activations.hpp"

namespace apr_cpu {

// q holds the 32 values in pair order (for Q8_0): for k = 0..7, x[4k], x[4k+2], x[4k+1], x[4k+3]. A
// 32-bit lane of packed weights split into 16-bit words holds elements (4k, 4k+2) in its even bytes
// and (4k+1, 4k+3) in its odd ones, so each pair is one broadcast for vpdpwssd.
struct BlockQ16 {
  float d;
  int32_t sum;     // sum of q, for the weight types with an offset or a minimum
  int32_t sum_lo;  // sum of the first 16 (Q6_K's offset applies per 16 elements)
  int16_t q[32];
  // The same values in element order, split into bytes: q = 256 * hi + lo. Every type but Q8_0
  // multiplies these with vpdpbusd, 4 products per lane: its quants (at most 6 bits) fit a signed
  // byte, so lo (unsigned) times quant and quant (unsigned) times hi are both byte products.
  uint8_t lo[32];
  int8_t hi[32];
};

// n is a multiple of 32. Rounds to nearest, ties to even (see quantize_q8).
inline void quantize_q16(const float* x, BlockQ16* out, size_t n) {
  for (size_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    const float d = block_absmax(xb) / 32767.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0, sum_lo = 0;
    for (int i = 0; i < 32; ++i) {
      float v = round_to_int(xb[i] * id);
      v = v < -32767.0f ? -32767.0f : (v > 32767.0f ? 32767.0f : v);
      const int16_t q = static_cast<int16_t>(v);
      // Element i = 4k + j goes to 4k + {0, 2, 1, 3}[j].
      const int j = i % 4;
      out[b].q[i - j + (j == 1 ? 2 : (j == 2 ? 1 : j))] = q;
      out[b].lo[i] = static_cast<uint8_t>(q & 0xFF);
      out[b].hi[i] = static_cast<int8_t>(q >> 8);
      sum += q;
      if (i < 16) sum_lo += q;
    }
    out[b].d = d;
    out[b].sum = sum;
    out[b].sum_lo = sum_lo;
  }
}

}  // namespace apr_cpu
