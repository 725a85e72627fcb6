// SPDX-License-Identifier: MIT
// The argument rules of every kernel (plugin.h and docs/PLUGIN-ABI.md), checked once for every
// backend before its kernel runs: handles are the device's own, every view lies inside its
// buffer, outputs overlap inputs only where the call allows it, and the scalar arguments make
// sense. A backend's kernel may then use the arguments as they are; it checks only the limits of
// its own (a grid size, a maximum head_dim) and reports those as APR_ERR_UNSUPPORTED.
#pragma once

#include <apr/plugin.h>

#include <cmath>
#include <string>

#include "abi_structs.hpp"
#include "failure.hpp"
#include "names.hpp"
#include "views.hpp"

namespace apr_sdk {

template <typename Device>
class ArgCheck {
 public:
  using Buffer = apr_buffer;
  explicit ArgCheck(const Device& device) : device_(device) {}

  // A view of n_rows x n_cols f32 at offset of buffer, rows row_stride apart.
  Extent<Buffer> view(const Buffer* handle, uint64_t offset, uint64_t n_rows, uint64_t n_cols,
                      uint64_t row_stride, const char* what) const {
    const auto& b = device_.buffer(handle, what);
    const uint64_t bytes = view_bytes(n_rows, n_cols, row_stride, what);
    check_range(b.nbytes, offset, bytes, what);
    return {&b, offset, bytes};
  }
  Extent<Buffer> span(const Buffer* handle, uint64_t offset, uint64_t n, const char* what) const {
    return view(handle, offset, n == 0 ? 0 : 1, n, n, what);
  }

 private:
  const Device& device_;
};

// Output may be the input itself (same start), but not a shifted view of it.
template <typename Buffer>
void require_same_or_disjoint(const Extent<Buffer>& in, const Extent<Buffer>& out,
                              const char* what) {
  if (!in.same(out) && in.overlaps(out))
    invalid(std::string(what) + " overlap without being the same view");
}
template <typename Buffer>
void require_disjoint(const Extent<Buffer>& a, const Extent<Buffer>& b, const char* what) {
  if (a.overlaps(b)) invalid(std::string(what) + " overlap");
}

inline void require_finite(float value, const char* what) {
  if (!std::isfinite(value)) invalid(std::string(what) + " is not finite");
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_embed_args& a) {
  const ArgCheck<Device> c(d);
  const auto& table = d.weight(a.table, "table");
  if (a.n_rows > 0 && !a.token_ids) invalid("token_ids is NULL");
  c.view(a.out, a.out_offset, a.n_rows, table.n_cols, table.n_cols, "out");
  for (uint32_t r = 0; r < a.n_rows; ++r)
    if (a.token_ids[r] < 0 || static_cast<uint64_t>(a.token_ids[r]) >= table.n_rows)
      invalid("token id " + num(a.token_ids[r]) + " at row " + num(r) + " is outside the table '" +
              table.name + "' of " + num(table.n_rows) + " rows");
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_rms_norm_args& a) {
  const ArgCheck<Device> c(d);
  const uint32_t stride = norm_row_stride(a);
  const uint32_t groups = norm_groups(a);
  if (stride < a.n_cols) invalid("row_stride " + num(stride) + " < n_cols " + num(a.n_cols));
  if (a.n_cols % groups != 0)
    invalid("n_groups " + num(groups) + " does not divide n_cols " + num(a.n_cols));
  const auto x = c.view(a.x, a.x_offset, a.n_rows, a.n_cols, stride, "x");
  const auto w = c.span(a.weight, a.weight_offset, a.n_cols / groups, "weight");
  const auto out = c.view(a.out, a.out_offset, a.n_rows, a.n_cols, stride, "out");
  require_same_or_disjoint(x, out, "x and out");
  require_disjoint(w, out, "weight and out");
  if (!(a.eps >= 0.0f) || !std::isfinite(a.eps)) invalid("eps is negative or not finite");
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_matmul_args& a) {
  const ArgCheck<Device> c(d);
  const auto& w = d.weight(a.weight, "weight");
  const uint64_t x_stride = a.x_row_stride ? a.x_row_stride : w.n_cols;
  const uint64_t y_stride = a.y_row_stride ? a.y_row_stride : w.n_rows;
  if (x_stride < w.n_cols)
    invalid("x_row_stride " + num(x_stride) + " is smaller than the weight '" + w.name +
            "' n_cols " + num(w.n_cols));
  if (y_stride < w.n_rows)
    invalid("y_row_stride " + num(y_stride) + " is smaller than the weight '" + w.name +
            "' n_rows " + num(w.n_rows));
  const auto x = c.view(a.x, a.x_offset, a.n_rows, w.n_cols, x_stride, "x");
  const auto y = c.view(a.y, a.y_offset, a.n_rows, w.n_rows, y_stride, "y");
  require_disjoint(x, y, "x and y");
  if (a.bias) require_disjoint(c.span(a.bias, a.bias_offset, w.n_rows, "bias"), y, "bias and y");
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_add_args& a) {
  const ArgCheck<Device> c(d);
  // A period longer than n only ever reads b's first n elements.
  const uint64_t period = a.b_period && a.b_period < a.n ? a.b_period : a.n;
  const auto x = c.span(a.a, a.a_offset, a.n, "a");
  const auto b = c.span(a.b, a.b_offset, period, "b");
  const auto out = c.span(a.out, a.out_offset, a.n, "out");
  require_same_or_disjoint(x, out, "a and out");
  require_disjoint(b, out, "b and out");
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_rope_args& a) {
  const uint64_t width = uint64_t{a.n_heads} * a.head_dim;
  const uint64_t stride = a.x_row_stride ? a.x_row_stride : width;
  if (a.n_rot % 2 != 0 || a.n_rot > a.head_dim)
    invalid("n_rot " + num(a.n_rot) + " must be even and at most head_dim " + num(a.head_dim));
  if (a.mode != APR_ROPE_INTERLEAVED && a.mode != APR_ROPE_HALF)
    invalid("unknown rope mode " + num(a.mode));
  if (stride < width) invalid("x_row_stride " + num(stride) + " < n_heads * head_dim");
  if (!(a.freq_base > 0.0f) || !std::isfinite(a.freq_base) || !std::isfinite(a.freq_scale))
    invalid("freq_base must be positive and freq_scale finite");
  ArgCheck<Device>(d).view(a.x, a.x_offset, a.n_rows, width, stride, "x");
  const float* factors = APR_STRUCT_HAS(&a, apr_rope_args, freq_factors) ? a.freq_factors : nullptr;
  if (factors)
    for (uint32_t i = 0; i < a.n_rot / 2; ++i)
      if (!(factors[i] > 0.0f) || !std::isfinite(factors[i]))
        invalid("freq_factors[" + num(i) + "] must be positive and finite");
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_kv_store_args& a) {
  const ArgCheck<Device> c(d);
  const uint64_t stride = a.src_row_stride ? a.src_row_stride : a.kv_dim;
  if (stride < a.kv_dim) invalid("src_row_stride " + num(stride) + " < kv_dim");
  const auto k = c.view(a.k, a.k_offset, a.n_rows, a.kv_dim, stride, "k");
  const auto v = c.view(a.v, a.v_offset, a.n_rows, a.kv_dim, stride, "v");
  uint64_t first_byte;
  if (__builtin_mul_overflow(uint64_t{a.pos0} * a.kv_dim, uint64_t{4}, &first_byte))
    invalid("pos0 * kv_dim overflows");
  const auto kc =
      c.view(a.k_cache, first_byte, a.n_rows, a.kv_dim, a.kv_dim, "k_cache (rows pos0..)");
  const auto vc =
      c.view(a.v_cache, first_byte, a.n_rows, a.kv_dim, a.kv_dim, "v_cache (rows pos0..)");
  if (a.k_cache == a.v_cache) invalid("k_cache and v_cache are the same buffer");
  require_disjoint(k, kc, "k and k_cache");
  require_disjoint(v, vc, "v and v_cache");
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_attention_args& a) {
  const ArgCheck<Device> c(d);
  if (a.n_heads == 0 || a.n_kv_heads == 0 || a.n_heads % a.n_kv_heads != 0)
    invalid("n_heads " + num(a.n_heads) + " is not a positive multiple of n_kv_heads " +
            num(a.n_kv_heads));
  if (a.head_dim == 0) invalid("head_dim is 0");
  require_finite(a.scale, "scale");
  const float softcap = attention_softcap(a);
  if (!(softcap >= 0.0f) || !std::isfinite(softcap)) invalid("softcap is negative or not finite");
  const uint64_t q_width = uint64_t{a.n_heads} * a.head_dim;
  const uint64_t kv_dim = uint64_t{a.n_kv_heads} * a.head_dim;
  const uint64_t q_stride = a.q_row_stride ? a.q_row_stride : q_width;
  if (q_stride < q_width) invalid("q_row_stride " + num(q_stride) + " < n_heads * head_dim");
  const uint64_t n_kv = uint64_t{a.pos0} + a.n_rows;
  const auto q = c.view(a.q, a.q_offset, a.n_rows, q_width, q_stride, "q");
  const auto kc = c.view(a.k_cache, 0, n_kv, kv_dim, kv_dim, "k_cache (rows 0..pos0+n_rows)");
  const auto vc = c.view(a.v_cache, 0, n_kv, kv_dim, kv_dim, "v_cache (rows 0..pos0+n_rows)");
  const auto out = c.view(a.out, a.out_offset, a.n_rows, q_width, q_width, "out");
  if (q.overlaps(out) || kc.overlaps(out) || vc.overlaps(out))
    invalid("out overlaps q or the caches");
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_swiglu_args& a) {
  const ArgCheck<Device> c(d);
  const auto gate = c.view(a.gate, a.gate_offset, a.n_rows, a.n_cols, a.n_cols, "gate");
  const auto up = c.view(a.up, a.up_offset, a.n_rows, a.n_cols, a.n_cols, "up");
  const auto out = c.view(a.out, a.out_offset, a.n_rows, a.n_cols, a.n_cols, "out");
  require_same_or_disjoint(gate, out, "gate and out");
  require_same_or_disjoint(up, out, "up and out");
  const uint32_t act = gated_activation(a);
  if (act != APR_ACT_SILU && act != APR_ACT_GELU_TANH) invalid("unknown activation " + num(act));
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_unary_args& a) {
  const ArgCheck<Device> c(d);
  const auto x = c.span(a.x, a.x_offset, a.n, "x");
  const auto out = c.span(a.out, a.out_offset, a.n, "out");
  require_same_or_disjoint(x, out, "x and out");
  require_finite(a.alpha, "alpha");
  if (a.op == APR_UNARY_SOFTCAP) {
    if (!(a.alpha > 0.0f)) invalid("alpha of a soft-cap must be positive");
  } else if (a.op != APR_UNARY_SCALE) {
    invalid("unknown unary op " + num(a.op));
  }
}

template <typename Device>
void check_kernel_args(const Device& d, const apr_trace_emit_args& a) {
  if (!stage_info(a.stage)) invalid("unknown stage " + num(a.stage));
  const uint64_t stride = a.row_stride ? a.row_stride : a.n_cols;
  if (stride < a.n_cols) invalid("row_stride " + num(stride) + " < n_cols");
  ArgCheck<Device>(d).view(a.buffer, a.offset, a.n_rows, a.n_cols, stride, "buffer");
}

// step_begin/step_end: the scalars buffer holds the step's words (unless the step is discarded).
template <typename Device>
void check_kernel_args(const Device& d, const apr_step_args& a) {
  if (a.flags & APR_STEP_DISCARD) return;
  const auto& b = d.buffer(a.scalars, "scalars");
  check_range(b.nbytes, a.scalars_offset, APR_STEP_SCALARS_BYTES(a.n_rows), "scalars");
}

}  // namespace apr_sdk
