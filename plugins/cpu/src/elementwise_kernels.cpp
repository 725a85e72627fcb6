// SPDX-License-Identifier: MIT
// Row-wise and element-wise kernels: embed, rms_norm, add, rope, kv_store, swiglu, unary.
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

// Splits n elements into fixed chunks for the pool; elements are independent.
template <typename ElementFn>
void for_each_element(apr_device& device, uint64_t n, ElementFn&& fn) {
  constexpr uint64_t kChunk = 1 << 16;
  device.pool.run((n + kChunk - 1) / kChunk, [&](size_t task) {
    const uint64_t end = std::min(n, (task + 1) * kChunk);
    for (uint64_t i = task * kChunk; i < end; ++i) fn(i);
  });
}

// One group of n values normalised on its own. As ggml: the sum of squares in double, the scale
// in f32, then x * scale * weight.
void rms_norm_group(const float* x, const float* w, float* y, uint32_t n, float eps) {
  double sum = 0.0;
  for (uint32_t c = 0; c < n; ++c) sum += static_cast<double>(x[c]) * x[c];
  const float mean = static_cast<float>(sum / n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (uint32_t c = 0; c < n; ++c) y[c] = (x[c] * scale) * w[c];
}

// silu(z) = z / (1 + e^-z), in f32.
inline float silu(float z) {
  return z / (1.0f + std::exp(-z));
}

// The tanh form of GELU, plugin.h's formula evaluated in f32: 0.5 z (1 + tanh(sqrt(2/pi) (z +
// 0.044715 z^3))). Below z = -3 the sum 1 + tanh cancels, leaving an absolute error of a few
// 1e-7 on values that are themselves that small: harmless next to the f32 rounding of the rest.
inline float gelu_tanh(float z) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * z * (1.0f + std::tanh(kSqrt2OverPi * (z + 0.044715f * z * z * z)));
}

// act(gate) for one row: the branch sits outside the loop so each loop stays a plain one.
void activate_row(uint32_t activation, const float* gate, float* act, uint32_t n) {
  if (activation == APR_ACT_GELU_TANH) {
    for (uint32_t c = 0; c < n; ++c) act[c] = gelu_tanh(gate[c]);
  } else {
    for (uint32_t c = 0; c < n; ++c) act[c] = silu(gate[c]);
  }
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

// Each row is n_groups groups normalised on their own with the same weight (ABI 1.3's per-head
// QK-norm; one group is the classic row norm). Rows lie row_stride apart, so a Q or K slice of
// the host's [q|k|v] rows is normalised in place.
void run_rms_norm(apr_device& device, const apr_rms_norm_args& a) {
  const uint64_t stride = apr_sdk::norm_row_stride(a);
  const uint32_t groups = apr_sdk::norm_groups(a);
  const uint32_t width = a.n_cols / groups;
  const float* x = f32_at(a.x, a.x_offset);
  const float* w = f32_at(a.weight, a.weight_offset);
  float* out = f32_at(a.out, a.out_offset);
  if (a.n_cols == 0) return;
  for_each_row(device, a.n_rows, a.n_cols, [&](uint64_t r) {
    for (uint32_t g = 0; g < groups; ++g) {
      const uint64_t at = r * stride + uint64_t{g} * width;
      rms_norm_group(x + at, w, out + at, width, a.eps);
    }
  });
}

void run_add(apr_device& device, const apr_add_args& a) {
  // A period longer than n only ever reads b's first n elements.
  const uint64_t period = a.b_period && a.b_period < a.n ? a.b_period : a.n;
  const float* x = f32_at(a.a, a.a_offset);
  const float* b = f32_at(a.b, a.b_offset);
  float* out = f32_at(a.out, a.out_offset);
  for_each_element(device, a.n, [&](uint64_t i) { out[i] = x[i] + b[i % period]; });
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

// out = act(gate) * up; act(gate) is the traced FFN_SILU or FFN_GELU, whichever the activation
// makes, and is the very row the product reads.
void run_swiglu(apr_device& device, const apr_swiglu_args& a) {
  const float* gate = f32_at(a.gate, a.gate_offset);
  const float* up = f32_at(a.up, a.up_offset);
  float* out = f32_at(a.out, a.out_offset);
  const uint32_t activation = apr_sdk::gated_activation(a);
  const apr_stage act_stage =
      activation == APR_ACT_GELU_TANH ? APR_STAGE_FFN_GELU : APR_STAGE_FFN_SILU;
  const bool emit_act = device.wants(act_stage, a.layer);
  const fault::Rows rows = fault::rows_of(device, a.n_rows);
  std::vector<float> act_all;
  if (emit_act) act_all.resize(uint64_t{a.n_rows} * a.n_cols);
  for_each_row(device, a.n_rows, a.n_cols * 4, [&](uint64_t r) {
    thread_local std::vector<float> act;
    act.resize(a.n_cols);
    activate_row(activation, gate + r * a.n_cols, act.data(), a.n_cols);
    fault::perturb_row(act_stage, a.layer, rows, r, act.data(), a.n_cols);
    if (emit_act) std::memcpy(act_all.data() + r * a.n_cols, act.data(), a.n_cols * 4);
    const float* u = up + r * a.n_cols;
    float* o = out + r * a.n_cols;
    for (uint32_t c = 0; c < a.n_cols; ++c) o[c] = act[c] * u[c];
  });
  if (emit_act) device.trace.emit(act_stage, a.layer, act_all.data(), {a.n_rows, a.n_cols});
  fault::after_swiglu(device, a);
}

// out = alpha * x, or alpha * tanh(x / alpha) (the soft-cap), in f32; out may be x.
void run_unary(apr_device& device, const apr_unary_args& a) {
  const float* x = f32_at(a.x, a.x_offset);
  float* out = f32_at(a.out, a.out_offset);
  const float alpha = a.alpha;
  if (a.op == APR_UNARY_SOFTCAP)
    for_each_element(device, a.n, [&](uint64_t i) { out[i] = alpha * std::tanh(x[i] / alpha); });
  else
    for_each_element(device, a.n, [&](uint64_t i) { out[i] = alpha * x[i]; });
}

}  // namespace apr_cpu
