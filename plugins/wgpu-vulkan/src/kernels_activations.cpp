// SPDX-License-Identifier: MIT
// Kernels on f32 activations: rms_norm, add, rope, kv_store, swiglu.
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "plugin_objects.hpp"

namespace apr_vk {
namespace {

constexpr uint32_t kElementThreads = 256;  // local_size_x of add, rope and swiglu

struct RmsNormPush {
  uint32_t x_off, g_off, y_off, n_cols;
  float eps;
};

struct AddPush {
  uint32_t a_off, b_off, o_off, n, b_period;
};

struct RopePush {
  uint32_t x_off, x_stride, n_rows, n_heads, head_dim, n_rot, half_mode, t_off;
};

struct SwigluPush {
  uint32_t g_off, u_off, y_off, n, emit_silu, s_off;
};

uint64_t groups_for(uint64_t n, uint64_t per_group) {
  return (n + per_group - 1) / per_group;
}

void require_u32(uint64_t value, const std::string& what) {
  require(value <= UINT32_MAX, APR_ERR_UNSUPPORTED, what + " exceeds 2^32 elements");
}

}  // namespace

void rms_norm(apr_device& dev, const apr_rms_norm_args& args) {
  if (args.n_rows == 0 || args.n_cols == 0) return;
  const apr_buffer& x = checked_buffer(dev, args.x, "rms_norm: x");
  const apr_buffer& g = checked_buffer(dev, args.weight, "rms_norm: weight");
  const apr_buffer& out = checked_buffer(dev, args.out, "rms_norm: out");
  const uint64_t bytes = view_bytes(args.n_rows, args.n_cols, args.n_cols);
  check_range(x, args.x_offset, bytes, "rms_norm: x");
  check_range(g, args.weight_offset, uint64_t(args.n_cols) * 4, "rms_norm: weight");
  check_range(out, args.out_offset, bytes, "rms_norm: out");
  Device& vk = *dev.vk;
  const std::array<Binding, 3> bindings = {vk.bind(x.memory, args.x_offset, bytes),
                                           vk.bind(g.memory, args.weight_offset, args.n_cols * 4),
                                           vk.bind(out.memory, args.out_offset, bytes)};
  const RmsNormPush push{bindings[0].word_offset, bindings[1].word_offset, bindings[2].word_offset,
                         args.n_cols, args.eps};
  vk.dispatch(Kernel::kRmsNorm, 0, bindings, &push, sizeof push, vk.grid_1d(args.n_rows));
}

void add(apr_device& dev, const apr_add_args& args) {
  if (args.n == 0) return;
  const uint64_t period = args.b_period ? args.b_period : args.n;
  require_u32(args.n, "add: n");
  const apr_buffer& a = checked_buffer(dev, args.a, "add: a");
  const apr_buffer& b = checked_buffer(dev, args.b, "add: b");
  const apr_buffer& out = checked_buffer(dev, args.out, "add: out");
  check_range(a, args.a_offset, args.n * 4, "add: a");
  check_range(b, args.b_offset, period * 4, "add: b");
  check_range(out, args.out_offset, args.n * 4, "add: out");
  Device& vk = *dev.vk;
  const std::array<Binding, 3> bindings = {vk.bind(a.memory, args.a_offset, args.n * 4),
                                           vk.bind(b.memory, args.b_offset, period * 4),
                                           vk.bind(out.memory, args.out_offset, args.n * 4)};
  const AddPush push{bindings[0].word_offset, bindings[1].word_offset, bindings[2].word_offset,
                     uint32_t(args.n), uint32_t(period)};
  vk.dispatch(Kernel::kAdd, 0, bindings, &push, sizeof push,
              vk.grid_1d(groups_for(args.n, kElementThreads)));
}

void rope(apr_device& dev, const apr_rope_args& args) {
  const uint64_t width = uint64_t(args.n_heads) * args.head_dim;
  const uint64_t stride = args.x_row_stride ? args.x_row_stride : width;
  require(args.n_rot % 2 == 0 && args.n_rot <= args.head_dim, APR_ERR_INVALID_ARGUMENT,
          "rope: n_rot " + std::to_string(args.n_rot) + " must be even and at most head_dim " +
              std::to_string(args.head_dim));
  require(args.mode == APR_ROPE_INTERLEAVED || args.mode == APR_ROPE_HALF, APR_ERR_INVALID_ARGUMENT,
          "rope: unknown mode " + std::to_string(args.mode));
  require(stride >= width, APR_ERR_INVALID_ARGUMENT,
          "rope: x_row_stride " + std::to_string(stride) + " is below n_heads x head_dim");
  if (args.n_rows == 0 || args.n_rot == 0 || args.n_heads == 0) return;
  const apr_buffer& x = checked_buffer(dev, args.x, "rope: x");
  const uint64_t bytes = view_bytes(args.n_rows, width, stride);
  check_range(x, args.x_offset, bytes, "rope: x");
  const uint64_t pairs = args.n_rot / 2;
  const uint64_t n_work = uint64_t(args.n_rows) * args.n_heads * pairs;
  require_u32(n_work, "rope: rows x heads x pairs");

  const float* factors =
      APR_STRUCT_HAS(&args, apr_rope_args, freq_factors) ? args.freq_factors : nullptr;
  if (factors)
    for (uint64_t i = 0; i < pairs; ++i)
      require(factors[i] > 0.0f && std::isfinite(factors[i]), APR_ERR_INVALID_ARGUMENT,
              "rope: freq_factors[" + std::to_string(i) + "] must be positive and finite");

  // The angles in double on the host, rounded once to f32 for the shader.
  std::vector<float> table(2 * args.n_rows * pairs);
  for (uint64_t i = 0; i < pairs; ++i) {
    const double inv_freq =
        std::pow(double(args.freq_base), -2.0 * double(i) / double(args.n_rot)) /
        (factors ? double(factors[i]) : 1.0);
    for (uint64_t r = 0; r < args.n_rows; ++r) {
      const double theta = double(args.pos0 + r) * double(args.freq_scale) * inv_freq;
      table[2 * (r * pairs + i)] = float(std::cos(theta));
      table[2 * (r * pairs + i) + 1] = float(std::sin(theta));
    }
  }
  Device& vk = *dev.vk;
  const DeviceBuffer& angles = vk.transient_input(table.data(), table.size() * 4);
  const std::array<Binding, 2> bindings = {vk.bind(x.memory, args.x_offset, bytes),
                                           vk.bind(angles, 0, table.size() * 4)};
  const RopePush push{bindings[0].word_offset,
                      uint32_t(stride),
                      args.n_rows,
                      args.n_heads,
                      args.head_dim,
                      args.n_rot,
                      args.mode == APR_ROPE_HALF ? 1u : 0u,
                      bindings[1].word_offset};
  vk.dispatch(Kernel::kRope, 0, bindings, &push, sizeof push,
              vk.grid_1d(groups_for(n_work, kElementThreads)));
}

void kv_store(apr_device& dev, const apr_kv_store_args& args) {
  if (args.n_rows == 0 || args.kv_dim == 0) return;
  const uint64_t stride = args.src_row_stride ? args.src_row_stride : args.kv_dim;
  require(stride >= args.kv_dim, APR_ERR_INVALID_ARGUMENT,
          "kv_store: src_row_stride " + std::to_string(stride) + " is below kv_dim");
  const apr_buffer& k = checked_buffer(dev, args.k, "kv_store: k");
  const apr_buffer& v = checked_buffer(dev, args.v, "kv_store: v");
  const apr_buffer& k_cache = checked_buffer(dev, args.k_cache, "kv_store: k_cache");
  const apr_buffer& v_cache = checked_buffer(dev, args.v_cache, "kv_store: v_cache");
  const uint64_t src_bytes = view_bytes(args.n_rows, args.kv_dim, stride);
  check_range(k, args.k_offset, src_bytes, "kv_store: k");
  check_range(v, args.v_offset, src_bytes, "kv_store: v");
  const uint64_t row_bytes = uint64_t(args.kv_dim) * 4;
  const uint64_t dst_offset = uint64_t(args.pos0) * row_bytes;
  const uint64_t dst_bytes = uint64_t(args.n_rows) * row_bytes;
  check_range(k_cache, dst_offset, dst_bytes, "kv_store: k_cache (rows pos0..pos0+n_rows)");
  check_range(v_cache, dst_offset, dst_bytes, "kv_store: v_cache (rows pos0..pos0+n_rows)");

  std::vector<vk::BufferCopy> k_regions, v_regions;
  if (stride == args.kv_dim) {
    k_regions.emplace_back(args.k_offset, dst_offset, dst_bytes);
    v_regions.emplace_back(args.v_offset, dst_offset, dst_bytes);
  } else {
    for (uint64_t r = 0; r < args.n_rows; ++r) {
      k_regions.emplace_back(args.k_offset + r * stride * 4, dst_offset + r * row_bytes, row_bytes);
      v_regions.emplace_back(args.v_offset + r * stride * 4, dst_offset + r * row_bytes, row_bytes);
    }
  }
  dev.vk->copy(k.memory, k_cache.memory, k_regions);
  dev.vk->copy(v.memory, v_cache.memory, v_regions);
}

void swiglu(apr_device& dev, const apr_swiglu_args& args) {
  const uint64_t n = uint64_t(args.n_rows) * args.n_cols;
  if (n == 0) return;
  require_u32(n, "swiglu: n_rows x n_cols");
  const apr_buffer& gate = checked_buffer(dev, args.gate, "swiglu: gate");
  const apr_buffer& up = checked_buffer(dev, args.up, "swiglu: up");
  const apr_buffer& out = checked_buffer(dev, args.out, "swiglu: out");
  check_range(gate, args.gate_offset, n * 4, "swiglu: gate");
  check_range(up, args.up_offset, n * 4, "swiglu: up");
  check_range(out, args.out_offset, n * 4, "swiglu: out");
  Device& vk = *dev.vk;
  const bool emit_silu = trace_wanted(dev, APR_STAGE_FFN_SILU, args.layer);
  const DeviceBuffer* scratch = emit_silu ? &vk.trace_scratch(n * 4) : nullptr;
  const std::array<Binding, 4> bindings = {
      vk.bind(gate.memory, args.gate_offset, n * 4), vk.bind(up.memory, args.up_offset, n * 4),
      vk.bind(out.memory, args.out_offset, n * 4),
      scratch ? vk.bind(*scratch, 0, n * 4) : vk.unused_binding()};
  const SwigluPush push{bindings[0].word_offset, bindings[1].word_offset,
                        bindings[2].word_offset, uint32_t(n),
                        emit_silu ? 1u : 0u,     bindings[3].word_offset};
  vk.dispatch(Kernel::kSwiglu, 0, bindings, &push, sizeof push,
              vk.grid_1d(groups_for(n, kElementThreads)));
  if (emit_silu) {
    std::vector<float> silu(n);
    const vk::BufferCopy region(0, 0, n * 4);
    vk.download(*scratch, {&region, 1}, silu.data(), n * 4);
    emit_trace(dev, APR_STAGE_FFN_SILU, args.layer, {args.n_rows, args.n_cols}, silu.data());
  }
}

}  // namespace apr_vk
