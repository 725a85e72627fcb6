// SPDX-License-Identifier: MIT
// Row-wise and element-wise kernels: embed, rms_norm, add, rope, kv_store, swiglu.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "arg_checks.hpp"
#include "fault_injection.hpp"
#include "kernels.hpp"

namespace apr_cpu {

namespace {

// Output may be the input itself, but not a shifted view of it.
void check_alias(const apr_buffer* in, uint64_t in_offset, uint64_t in_bytes, const apr_buffer* out,
                 uint64_t out_offset, uint64_t out_bytes, const char* what) {
  if (in == out && in_offset == out_offset) return;
  if (views_overlap(in, in_offset, in_bytes, out, out_offset, out_bytes))
    invalid(std::string(what) + " overlap without being the same view");
}

void check_disjoint(const apr_buffer* a, uint64_t a_offset, uint64_t a_bytes, const apr_buffer* b,
                    uint64_t b_offset, uint64_t b_bytes, const char* what) {
  if (views_overlap(a, a_offset, a_bytes, b, b_offset, b_bytes))
    invalid(std::string(what) + " overlap");
}

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
  if (!a.table) invalid("table is NULL");
  const apr_weight& t = *a.table;
  if (a.n_rows > 0 && !a.token_ids) invalid("token_ids is NULL");
  float* out = checked_view(a.out, a.out_offset, a.n_rows, t.n_cols, t.n_cols, "out");
  for (uint32_t r = 0; r < a.n_rows; ++r)
    if (a.token_ids[r] < 0 || static_cast<uint64_t>(a.token_ids[r]) >= t.n_rows)
      invalid("token id " + num(a.token_ids[r]) + " at row " + num(r) + " is outside the table '" +
              t.name + "' of " + num(t.n_rows) + " rows");
  for_each_row(device, a.n_rows, t.n_cols, [&](uint64_t r) {
    device.kernels.decode_row(t.format->type, t.row(static_cast<uint64_t>(a.token_ids[r])),
                              out + r * t.n_cols, t.n_cols);
  });
}

void run_rms_norm(apr_device& device, const apr_rms_norm_args& a) {
  const float* x = checked_view(a.x, a.x_offset, a.n_rows, a.n_cols, a.n_cols, "x");
  const float* w = checked_span(a.weight, a.weight_offset, a.n_cols, "weight");
  float* out = checked_view(a.out, a.out_offset, a.n_rows, a.n_cols, a.n_cols, "out");
  const uint64_t bytes = view_bytes(a.n_rows, a.n_cols, a.n_cols);
  check_alias(a.x, a.x_offset, bytes, a.out, a.out_offset, bytes, "x and out");
  check_disjoint(a.weight, a.weight_offset, uint64_t{a.n_cols} * 4, a.out, a.out_offset, bytes,
                 "weight and out");
  if (!(a.eps >= 0.0f) || !std::isfinite(a.eps)) invalid("eps is negative or not finite");
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
  const float* x = checked_span(a.a, a.a_offset, a.n, "a");
  const float* b = checked_span(a.b, a.b_offset, period, "b");
  float* out = checked_span(a.out, a.out_offset, a.n, "out");
  check_alias(a.a, a.a_offset, a.n * 4, a.out, a.out_offset, a.n * 4, "a and out");
  check_disjoint(a.b, a.b_offset, period * 4, a.out, a.out_offset, a.n * 4, "b and out");
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
  if (a.n_rot % 2 != 0 || a.n_rot > a.head_dim)
    invalid("n_rot " + num(a.n_rot) + " must be even and at most head_dim " + num(a.head_dim));
  if (a.mode != APR_ROPE_INTERLEAVED && a.mode != APR_ROPE_HALF)
    invalid("unknown rope mode " + num(a.mode));
  if (stride < width) invalid("x_row_stride " + num(stride) + " < n_heads * head_dim");
  if (!(a.freq_base > 0.0f) || !std::isfinite(a.freq_base) || !std::isfinite(a.freq_scale))
    invalid("freq_base must be positive and freq_scale finite");
  float* x = checked_view(a.x, a.x_offset, a.n_rows, width, stride, "x");
  const uint32_t half = a.n_rot / 2;
  const float* factors = APR_STRUCT_HAS(&a, apr_rope_args, freq_factors) ? a.freq_factors : nullptr;
  if (factors)
    for (uint32_t i = 0; i < half; ++i)
      if (!(factors[i] > 0.0f) || !std::isfinite(factors[i]))
        invalid("freq_factors[" + num(i) + "] must be positive and finite");
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
}

void run_kv_store(apr_device&, const apr_kv_store_args& a) {
  const uint64_t stride = a.src_row_stride ? a.src_row_stride : a.kv_dim;
  if (stride < a.kv_dim) invalid("src_row_stride " + num(stride) + " < kv_dim");
  const float* k = checked_view(a.k, a.k_offset, a.n_rows, a.kv_dim, stride, "k");
  const float* v = checked_view(a.v, a.v_offset, a.n_rows, a.kv_dim, stride, "v");
  const uint64_t count = a.n_rows;
  uint64_t first_byte;
  if (__builtin_mul_overflow(uint64_t{a.pos0} * a.kv_dim, uint64_t{4}, &first_byte))
    invalid("pos0 * kv_dim overflows");
  float* kc = checked_view(a.k_cache, first_byte, count, a.kv_dim, a.kv_dim, "k_cache");
  float* vc = checked_view(a.v_cache, first_byte, count, a.kv_dim, a.kv_dim, "v_cache");
  if (a.k_cache == a.v_cache) invalid("k_cache and v_cache are the same buffer");
  const uint64_t bytes = count * a.kv_dim * 4;
  check_disjoint(a.k, a.k_offset, view_bytes(count, a.kv_dim, stride), a.k_cache, first_byte, bytes,
                 "k and k_cache");
  check_disjoint(a.v, a.v_offset, view_bytes(count, a.kv_dim, stride), a.v_cache, first_byte, bytes,
                 "v and v_cache");
  for (uint64_t r = 0; r < count; ++r) {
    std::memcpy(kc + r * a.kv_dim, k + r * stride, a.kv_dim * sizeof(float));
    std::memcpy(vc + r * a.kv_dim, v + r * stride, a.kv_dim * sizeof(float));
  }
}

void run_swiglu(apr_device& device, const apr_swiglu_args& a) {
  const float* gate = checked_view(a.gate, a.gate_offset, a.n_rows, a.n_cols, a.n_cols, "gate");
  const float* up = checked_view(a.up, a.up_offset, a.n_rows, a.n_cols, a.n_cols, "up");
  float* out = checked_view(a.out, a.out_offset, a.n_rows, a.n_cols, a.n_cols, "out");
  const uint64_t bytes = view_bytes(a.n_rows, a.n_cols, a.n_cols);
  check_alias(a.gate, a.gate_offset, bytes, a.out, a.out_offset, bytes, "gate and out");
  check_alias(a.up, a.up_offset, bytes, a.out, a.out_offset, bytes, "up and out");
  const bool emit_silu = device.sink_wants(APR_STAGE_FFN_SILU, a.layer);
  std::vector<float> silu_all;
  if (emit_silu) silu_all.resize(uint64_t{a.n_rows} * a.n_cols);
  for_each_row(device, a.n_rows, a.n_cols * 4, [&](uint64_t r) {
    thread_local std::vector<float> silu;
    silu.resize(a.n_cols);
    const float* g = gate + r * a.n_cols;
    for (uint32_t c = 0; c < a.n_cols; ++c) silu[c] = g[c] / (1.0f + std::exp(-g[c]));
    fault::perturb(APR_STAGE_FFN_SILU, a.layer, silu.data(), 1, a.n_cols, a.n_cols);
    if (emit_silu) std::memcpy(silu_all.data() + r * a.n_cols, silu.data(), a.n_cols * 4);
    const float* u = up + r * a.n_cols;
    float* o = out + r * a.n_cols;
    for (uint32_t c = 0; c < a.n_cols; ++c) o[c] = silu[c] * u[c];
  });
  if (emit_silu) {
    const uint64_t shape[2] = {a.n_rows, a.n_cols};
    emit_tensor(device, APR_STAGE_FFN_SILU, a.layer, silu_all.data(), 2, shape);
  }
}

}  // namespace apr_cpu
