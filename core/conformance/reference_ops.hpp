// SPDX-License-Identifier: MIT
// Float64 references for the kernels, written from plugin.h's definitions and independent of any
// plugin's code.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "ref_dequant.hpp"

namespace kernel_tests {

// Dequantized weight matrix, n_rows x n_cols, row-major.
inline std::vector<double> ref_weight(uint32_t type, const std::vector<uint8_t>& bytes,
                                      uint64_t n_rows, uint64_t n_cols) {
  const uint64_t row_bytes = n_cols / apr_test::block_size(type) * apr_test::type_size(type);
  std::vector<double> w(n_rows * n_cols);
  for (uint64_t r = 0; r < n_rows; ++r)
    for (uint64_t c = 0; c < n_cols; ++c)
      w[r * n_cols + c] = apr_test::ref_element(type, bytes.data() + r * row_bytes, c);
  return w;
}

// Tolerance of matmul's normalised squared error sum (a-b)^2 / sum b^2, per weight type. The
// reference dequantizes exactly as ggml defines each block (one rounding at most), so every
// correct plugin dequantizes exactly too.
//  - F32, F16, BF16 weights: f32 activations and f32 accumulation leave a few (2^-24)^2 * n_cols,
//    far below 1e-10 for the sizes used.
//  - block-quantized weights: a plugin may quantize the activations to 8 bits per block of 32 and
//    use integer dot products (as llama.cpp and the cpu plugin's decode path do); that costs up to
//    about 3e-5 here, so 1e-4. One wrong output element of the 37 checked costs 1e-3 or more.
inline double matmul_tolerance(uint32_t type) {
  switch (type) {
    case apr_test::kF32:
    case apr_test::kF16:
    case apr_test::kBF16:
      return 1e-10;
    default:
      return 1e-4;
  }
}

inline double ref_silu(double z) {
  return z / (1.0 + std::exp(-z));
}

// Rotates one row of n_heads x head_dim in place, as plugin.h defines rope.
inline void ref_rope_row(std::vector<double>& row, uint32_t n_heads, uint32_t head_dim,
                         uint32_t n_rot, uint32_t mode, double pos, double freq_base,
                         double freq_scale, const float* freq_factors = nullptr) {
  for (uint32_t h = 0; h < n_heads; ++h)
    for (uint32_t i = 0; i < n_rot / 2; ++i) {
      const double theta = pos * freq_scale * std::pow(freq_base, -2.0 * i / n_rot) /
                           (freq_factors ? double(freq_factors[i]) : 1.0);
      const uint64_t i0 = uint64_t{h} * head_dim + (mode == 0 ? 2 * i : i);
      const uint64_t i1 = uint64_t{h} * head_dim + (mode == 0 ? 2 * i + 1 : i + n_rot / 2);
      const double x0 = row[i0], x1 = row[i1];
      row[i0] = x0 * std::cos(theta) - x1 * std::sin(theta);
      row[i1] = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
}

}  // namespace kernel_tests
