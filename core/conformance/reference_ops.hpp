// SPDX-License-Identifier: MIT
// Float64 references for the kernels, written from plugin.h's definitions and independent of any
// plugin's code.
#pragma once

#include <algorithm>
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

// The tanh form of GELU (plugin.h, APR_ACT_GELU_TANH).
inline double ref_gelu_tanh(double z) {
  const double sqrt_2_over_pi = std::sqrt(2.0 / 3.14159265358979323846);
  return 0.5 * z * (1.0 + std::tanh(sqrt_2_over_pi * (z + 0.044715 * z * z * z)));
}

// The unary kernel's maps (plugin.h, APR_UNARY_*): 0 scale, 1 soft-cap.
inline double ref_unary(uint32_t op, double alpha, double z) {
  return op == 1 ? alpha * std::tanh(z / alpha) : alpha * z;
}

// Grouped RMSNorm of n_rows rows lying `stride` floats apart (ABI 1.3): each row's n_cols split
// into n_groups groups, each normalised on its own and multiplied by the same weight of
// n_cols / n_groups. Returns the rows packed, n_rows x n_cols.
inline std::vector<double> ref_rms_norm(const float* x, uint32_t n_rows, uint32_t n_cols,
                                        uint64_t stride, uint32_t n_groups, const float* weight,
                                        double eps) {
  const uint32_t width = n_cols / n_groups;
  std::vector<double> out;
  out.reserve(size_t(n_rows) * n_cols);
  for (uint32_t r = 0; r < n_rows; ++r)
    for (uint32_t g = 0; g < n_groups; ++g) {
      const float* xg = x + r * stride + uint64_t{g} * width;
      double ss = 0;
      for (uint32_t i = 0; i < width; ++i) ss += double(xg[i]) * xg[i];
      const double scale = 1.0 / std::sqrt(ss / width + eps);
      for (uint32_t i = 0; i < width; ++i) out.push_back(double(xg[i]) * scale * weight[i]);
    }
  return out;
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

// Causal GQA attention of rows at positions pos0.. over cached keys and values, as plugin.h
// defines it. Query row r, head h is q[r * q_stride + h * head_dim + d]; cached key t of KV group
// g is k[t * kv_stride + g * head_dim + d] (v likewise). ABI 1.3: with window W > 0 the row at
// position p sees keys p - W + 1..p only; with softcap c > 0 each score s becomes c tanh(s / c)
// before the softmax.
struct RefAttention {
  uint32_t n_heads = 0, n_rows = 0, n_kv = 0, head_dim = 0;
  // n_heads x n_rows x n_kv, as traced (soft-capped); keys a row does not see are 0.
  std::vector<double> scores, probs;
  std::vector<double> score_magnitude;  // sum |q_d k_d| * scale: the scores' rounding scale
  std::vector<double> out;              // n_rows x (n_heads * head_dim)
  std::vector<double> out_magnitude;    // sum |p_t v_t|: the outputs' rounding scale
};

// T: float (the kernels' inputs) or double (the float64 model reference).
template <typename T>
RefAttention ref_attention(const T* q, uint64_t q_stride, const T* k, const T* v,
                           uint64_t kv_stride, uint32_t n_rows, uint32_t pos0, uint32_t n_heads,
                           uint32_t n_kv_heads, uint32_t head_dim, double scale,
                           uint32_t window = 0, double softcap = 0) {
  RefAttention a;
  a.n_heads = n_heads;
  a.n_rows = n_rows;
  a.n_kv = pos0 + n_rows;
  a.head_dim = head_dim;
  const size_t grid = size_t(n_heads) * n_rows * a.n_kv;
  a.scores.assign(grid, 0.0);
  a.probs.assign(grid, 0.0);
  a.score_magnitude.assign(grid, 0.0);
  a.out.assign(size_t(n_rows) * n_heads * head_dim, 0.0);
  a.out_magnitude.assign(a.out.size(), 0.0);
  for (uint32_t h = 0; h < n_heads; ++h)
    for (uint32_t r = 0; r < n_rows; ++r) {
      const uint32_t g = h / (n_heads / n_kv_heads), visible = pos0 + r + 1;
      const uint32_t first = window > 0 && visible > window ? visible - window : 0;
      const size_t row = (size_t(h) * n_rows + r) * a.n_kv;
      double mx = -INFINITY, sum = 0;
      for (uint32_t t = first; t < visible; ++t) {
        double dot = 0, mag = 0;
        for (uint32_t d = 0; d < head_dim; ++d) {
          const double term = double(q[r * q_stride + h * head_dim + d]) *
                              double(k[t * kv_stride + g * head_dim + d]);
          dot += term;
          mag += std::fabs(term);
        }
        const double s = scale * dot;
        a.scores[row + t] = softcap > 0 ? softcap * std::tanh(s / softcap) : s;
        a.score_magnitude[row + t] = scale * mag;  // tanh's slope is at most 1
        mx = std::max(mx, a.scores[row + t]);
      }
      for (uint32_t t = first; t < visible; ++t) sum += std::exp(a.scores[row + t] - mx);
      for (uint32_t t = first; t < visible; ++t)
        a.probs[row + t] = std::exp(a.scores[row + t] - mx) / sum;
      for (uint32_t d = 0; d < head_dim; ++d) {
        double o = 0, mag = 0;
        for (uint32_t t = first; t < visible; ++t) {
          const double term = a.probs[row + t] * double(v[t * kv_stride + g * head_dim + d]);
          o += term;
          mag += std::fabs(term);
        }
        const size_t at = (size_t(r) * n_heads + h) * head_dim + d;
        a.out[at] = o;
        a.out_magnitude[at] = mag;
      }
    }
  return a;
}

}  // namespace kernel_tests
