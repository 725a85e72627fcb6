// SPDX-License-Identifier: MIT
// The inner loops of every kernel, compiled once per instruction set (scalar, AVX2+FMA, AVX-512)
// and picked at run time, so one binary runs on any x86-64 and uses what the machine has.
#pragma once

#include <apr/plugin.h>

#include <cstddef>
#include <cstdint>

#include "q16_activations.hpp"
#include "q8_activations.hpp"

namespace apr_cpu {

struct IsaKernels {
  const char* name;
  // Decodes the first n elements (a multiple of the block size) of an encoded row to f32.
  void (*decode_row)(apr_type type, const uint8_t* row, float* out, size_t n);
  // Fused dequantize + dot product of an encoded row with x, block by block.
  float (*dot_row)(apr_type type, const uint8_t* row, const float* x, size_t n);
  // y[ix * y_stride + iw] = dot(w row iw, x row ix) over n elements, for a tile of decoded rows.
  void (*dot_tile)(const float* w, size_t w_stride, size_t n_w, const float* x, size_t x_stride,
                   size_t n_x, float* y, size_t y_stride, size_t n);
  float (*dot)(const float* a, const float* b, size_t n);
  // Integer dot product of an encoded row with 8-bit activations (n / 32 blocks of x), for the
  // types q8_supported() names; 0 for any other.
  float (*dot_row_q8)(apr_type type, const uint8_t* row, const BlockQ8* x, size_t n);
  // Weights repacked by pack_weight (packed_weights.hpp), where this instruction set has kernels
  // for them (else both nullptr): y[r * y_stride + i] = row i of one 16-row group . x row r, for
  // r < nx rows of 8- or 16-bit activations (n_cols / 32 blocks each).
  void (*packed_gemm_q8)(apr_type type, const uint8_t* group, size_t n_cols, const BlockQ8* x,
                         size_t nx, float* y, size_t y_stride);
  void (*packed_gemm_q16)(apr_type type, const uint8_t* group, size_t n_cols, const BlockQ16* x,
                          size_t nx, float* y, size_t y_stride);
  // quantize_q16 (q16_activations.hpp) in SIMD, value for value, where packed_gemm_q16 exists.
  void (*quantize_q16)(const float* x, BlockQ16* out, size_t n);
  // y += a * x
  void (*axpy)(float a, const float* x, float* y, size_t n);
  // y[j] += sum over i < n_rows of p[i] * x[i * x_stride + j], for j < n: one fused multiply-add
  // per row, in row order, for every j.
  void (*weighted_sum)(const float* p, size_t n_rows, const float* x, size_t x_stride, float* y,
                       size_t n);
  // s[i] = e^(s[i] - m) for i < n (scores s[i] <= m), in f32; returns their sum.
  double (*exp_shifted)(float* s, size_t n, float m);
};

namespace scalar {
extern const IsaKernels kernels;
}
namespace avx2 {
extern const IsaKernels* kernels();  // nullptr where not compiled in
}
namespace avx512 {
extern const IsaKernels* kernels();
}
namespace avx512vnni {
extern const IsaKernels* kernels();
}

// The best set this CPU (and OS) supports; `requested` ("scalar", "avx2", "avx512",
// "avx512vnni"), when not
// null or empty, caps the choice so tests can exercise the lower paths.
const IsaKernels& select_isa_kernels(const char* requested);

}  // namespace apr_cpu
