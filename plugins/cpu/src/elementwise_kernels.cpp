// SPDX-License-Identifier: MIT
// Row-wise and element-wise kernels: embed, rms_norm, add, rope, kv_store, swiglu.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "device.hpp"
#include "fault_injection.hpp"
#include "status.hpp"
#include "views.hpp"

namespace apr_cpu {

namespace {

// Splits rows into fixed groups so the pool has work to share; the grouping does not change any
// result because rows are independent.
template <typename RowFn>
void for_each_row(apr_device& device, uint64_t n_rows, uint64_t row_cost, RowFn&& fn) {
  const uint64_t rows_per_task = std::max<uint64_t>(1, 16384 / std::max<uint64_t>(1, row_cost));
  const uint64_t n_tasks = (n_rows + rows_per_task - 1) / rows_per_task;
  device.pool.run(n_tasks, [&](size_t task) {
    const uint64_t end = std::min(n_rows, (task + 1) * rows_per_task);
    for (uint64_t r = task * rows_per_task; r < end; ++r) fn(r);
  });
}

}  // namespace

void run_embed(apr_device& device, const apr_embed_args& a) {
  const apr_weight& t = *a.table;
  float* out = f32_at(a.out, a.out_offset);
  for_each_row(device, a.n_rows, t.n_cols, [&](uint64_t r) {
    device.kernels.decode_row(t.type->id, t.row(static_cast<uint64_t>(a.token_ids[r])),
                              out + r * t.n_cols, t.n_cols);
  });
  fault::after_embed(device, a);
}

void run_rms_norm(apr_device& device, const apr_rms_norm_args& a) {
  const float* x = f32_at(a.x, a.x_offset);
  const float* w = f32_at(a.weight, a.weight_offset);
  float* out = f32_at(a.out, a.out_offset);
  if (a.n_cols == 0) return;
  for_each_row(device, a.n_rows, a.n_cols, [&](uint64_t r) {
    const float* xr = x + r * a.n_cols;
    float* yr = out + r * a.n_cols;
    // As ggml: the sum of squares in double, the scale in f32, then x * scale * weight.
    double sum = 0.0;
    for (uint32_t c = 0; c < a.n_cols; ++c) sum += static_cast<double>(xr[c]) * xr[c];
    const float mean = static_cast<float>(sum / a.n_cols);
    const float scale = 1.0f / std::sqrt(mean + a.eps);
    for (uint32_t c = 0; c < a.n_cols; ++c) yr[c] = (xr[c] * scale) * w[c];
  });
}

void run_add(apr_device& device, const apr_add_args& a) {
  // A period longer than n only ever reads b's first n elements.
  const uint64_t period = a.b_period && a.b_period < a.n ? a.b_period : a.n;
  const float* x = f32_at(a.a, a.a_offset);
  const float* b = f32_at(a.b, a.b_offset);
  float* out = f32_at(a.out, a.out_offset);
  if (a.n == 0) return;
  constexpr uint64_t kChunk = 1 << 16;
  device.pool.run((a.n + kChunk - 1) / kChunk, [&](size_t task) {
    const uint64_t end = std::min(a.n, (task + 1) * kChunk);
    for (uint64_t i = task * kChunk; i < end; ++i) out[i] = x[i] + b[i % period];
  });
}

void run_rope(apr_device& device, const apr_rope_args& a) {
  const uint64_t width = uint64_t{a.n_heads} * a.head_dim;
  const uint64_t stride = a.x_row_stride ? a.x_row_stride : width;
  float* x = f32_at(a.x, a.x_offset);
  const uint32_t half = a.n_rot / 2;
  const float* factors = APR_STRUCT_HAS(&a, apr_rope_args, freq_factors) ? a.freq_factors : nullptr;
  if (half == 0 || a.n_rows == 0) return;
  for_each_row(device, a.n_rows, width * 8, [&](uint64_t r) {
    thread_local std::vector<double> cos_sin;
    cos_sin.resize(2 * half);
    const double p = static_cast<double>(a.pos0) + static_cast<double>(r);
    for (uint32_t i = 0; i < half; ++i) {
      const double theta = p * static_cast<double>(a.freq_scale) *
                           std::pow(static_cast<double>(a.freq_base),
                                    -2.0 * static_cast<double>(i) / static_cast<double>(a.n_rot)) /
                           (factors ? static_cast<double>(factors[i]) : 1.0);
      cos_sin[2 * i] = std::cos(theta);
      cos_sin[2 * i + 1] = std::sin(theta);
    }
    for (uint32_t h = 0; h < a.n_heads; ++h) {
      float* head = x + r * stride + uint64_t{h} * a.head_dim;
      for (uint32_t i = 0; i < half; ++i) {
        float* p0 = a.mode == APR_ROPE_INTERLEAVED ? head + 2 * i : head + i;
        float* p1 = a.mode == APR_ROPE_INTERLEAVED ? head + 2 * i + 1 : head + i + half;
        const double x0 = *p0, x1 = *p1, c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
        *p0 = static_cast<float>(x0 * c - x1 * s);
        *p1 = static_cast<float>(x0 * s + x1 * c);
      }
    }
  });
  fault::after_rope(device, a);
}

void run_kv_store(apr_device& device, const apr_kv_store_args& a) {
  const uint64_t stride = a.src_row_stride ? a.src_row_stride : a.kv_dim;
  const float* k = f32_at(a.k, a.k_offset);
  const float* v = f32_at(a.v, a.v_offset);
  const uint64_t count = a.n_rows;
  const uint64_t first_byte = uint64_t{a.pos0} * a.kv_dim * 4;
  float* kc = f32_at(a.k_cache, first_byte);
  float* vc = f32_at(a.v_cache, first_byte);
  for (uint64_t r = 0; r < count; ++r) {
    std::memcpy(kc + r * a.kv_dim, k + r * stride, a.kv_dim * sizeof(float));
    std::memcpy(vc + r * a.kv_dim, v + r * stride, a.kv_dim * sizeof(float));
  }
  fault::after_kv_store(device, a);
}

void run_swiglu(apr_device& device, const apr_swiglu_args& a) {
  const float* gate = f32_at(a.gate, a.gate_offset);
  const float* up = f32_at(a.up, a.up_offset);
  float* out = f32_at(a.out, a.out_offset);
  const bool emit_silu = device.wants(APR_STAGE_FFN_SILU, a.layer);
  const fault::Rows rows = fault::rows_of(device, a.n_rows);
  std::vector<float> silu_all;
  if (emit_silu) silu_all.resize(uint64_t{a.n_rows} * a.n_cols);
  for_each_row(device, a.n_rows, a.n_cols * 4, [&](uint64_t r) {
    thread_local std::vector<float> silu;
    silu.resize(a.n_cols);
    const float* g = gate + r * a.n_cols;
    for (uint32_t c = 0; c < a.n_cols; ++c) silu[c] = g[c] / (1.0f + std::exp(-g[c]));
    fault::perturb_row(APR_STAGE_FFN_SILU, a.layer, rows, r, silu.data(), a.n_cols);
    if (emit_silu) std::memcpy(silu_all.data() + r * a.n_cols, silu.data(), a.n_cols * 4);
    const float* u = up + r * a.n_cols;
    float* o = out + r * a.n_cols;
    for (uint32_t c = 0; c < a.n_cols; ++c) o[c] = silu[c] * u[c];
  });
  if (emit_silu) {
    device.trace.emit(APR_STAGE_FFN_SILU, a.layer, silu_all.data(), {a.n_rows, a.n_cols});
  }
  fault::after_swiglu(device, a);
}

}  // namespace apr_cpu
