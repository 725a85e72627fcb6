// SPDX-License-Identifier: MIT
// Kernels on f32 activations: rms_norm, add, rope, kv_store, swiglu, unary.
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "plugin_objects.hpp"

using apr_sdk::view_bytes;
using apr_vk::Binding;
using apr_vk::DeviceBuffer;
using apr_vk::Kernel;

namespace {

constexpr uint32_t kElementThreads = 256;  // local_size_x of add, rope, swiglu and unary

struct RmsNormPush {
  uint32_t x_off, g_off, y_off, group_cols;
  float eps;
  uint32_t row_stride, n_groups, n_work;
};

struct AddPush {
  uint32_t a_off, b_off, o_off, n, b_period;
};

struct RopePush {
  uint32_t x_off, x_stride, n_rows, n_heads, head_dim, n_rot, half_mode, t_off;
};

struct SwigluPush {
  uint32_t g_off, u_off, y_off, n, emit_act, s_off, activation;
};

struct UnaryPush {
  uint32_t x_off, y_off, n, op;
  float alpha;
};

uint64_t groups_for(uint64_t n, uint64_t per_group) {
  return (n + per_group - 1) / per_group;
}

// Push constants are 32-bit.
void require_u32(uint64_t value, const std::string& what) {
  apr_vk::require(value <= UINT32_MAX, APR_ERR_UNSUPPORTED, what + " exceeds 2^32 elements");
}

}  // namespace

// One workgroup per (row, group): a per-head QK-norm has rows x heads small groups.
void apr_device::rms_norm(const apr_rms_norm_args& args) {
  if (args.n_rows == 0 || args.n_cols == 0) return;
  const uint32_t stride = apr_sdk::norm_row_stride(args);
  const uint32_t groups = apr_sdk::norm_groups(args);
  const uint32_t group_cols = args.n_cols / groups;  // the kit checked that groups divides n_cols
  const uint64_t n_work = uint64_t(args.n_rows) * groups;
  require_u32(n_work, "n_rows x n_groups");
  const apr_buffer& x = buffer(args.x, "x");
  const apr_buffer& g = buffer(args.weight, "weight");
  const apr_buffer& out = buffer(args.out, "out");
  const uint64_t bytes = view_bytes(args.n_rows, args.n_cols, stride, "x");
  const std::array<Binding, 3> bindings = {
      vulkan.bind(x.memory, args.x_offset, bytes),
      vulkan.bind(g.memory, args.weight_offset, uint64_t(group_cols) * 4),
      vulkan.bind(out.memory, args.out_offset, bytes)};
  const RmsNormPush push{bindings[0].word_offset,
                         bindings[1].word_offset,
                         bindings[2].word_offset,
                         group_cols,
                         args.eps,
                         stride,
                         groups,
                         uint32_t(n_work)};
  vulkan.dispatch(Kernel::kRmsNorm, 0, bindings, &push, sizeof push, vulkan.grid_1d(n_work));
}

void apr_device::add(const apr_add_args& args) {
  if (args.n == 0) return;
  require_u32(args.n, "n");
  // A period of n or more reads b as one plain vector (the kit checked b for that many elements).
  const uint64_t period = args.b_period && args.b_period < args.n ? args.b_period : args.n;
  const apr_buffer& a = buffer(args.a, "a");
  const apr_buffer& b = buffer(args.b, "b");
  const apr_buffer& out = buffer(args.out, "out");
  const std::array<Binding, 3> bindings = {vulkan.bind(a.memory, args.a_offset, args.n * 4),
                                           vulkan.bind(b.memory, args.b_offset, period * 4),
                                           vulkan.bind(out.memory, args.out_offset, args.n * 4)};
  const AddPush push{bindings[0].word_offset, bindings[1].word_offset, bindings[2].word_offset,
                     uint32_t(args.n), uint32_t(period)};
  vulkan.dispatch(Kernel::kAdd, 0, bindings, &push, sizeof push,
                  vulkan.grid_1d(groups_for(args.n, kElementThreads)));
}

void apr_device::rope(const apr_rope_args& args) {
  if (args.n_rows == 0 || args.n_rot == 0 || args.n_heads == 0) return;
  const uint64_t width = uint64_t(args.n_heads) * args.head_dim;
  const uint64_t stride = args.x_row_stride ? args.x_row_stride : width;
  const apr_buffer& x = buffer(args.x, "x");
  const uint64_t bytes = view_bytes(args.n_rows, width, stride, "x");
  const uint64_t pairs = args.n_rot / 2;
  const uint64_t n_work = uint64_t(args.n_rows) * args.n_heads * pairs;
  require_u32(n_work, "rows x heads x pairs");

  const float* factors =
      APR_STRUCT_HAS(&args, apr_rope_args, freq_factors) ? args.freq_factors : nullptr;
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
  const DeviceBuffer& angles = vulkan.transient_input(table.data(), table.size() * 4);
  const std::array<Binding, 2> bindings = {vulkan.bind(x.memory, args.x_offset, bytes),
                                           vulkan.bind(angles, 0, table.size() * 4)};
  const RopePush push{bindings[0].word_offset,
                      uint32_t(stride),
                      args.n_rows,
                      args.n_heads,
                      args.head_dim,
                      args.n_rot,
                      args.mode == APR_ROPE_HALF ? 1u : 0u,
                      bindings[1].word_offset};
  vulkan.dispatch(Kernel::kRope, 0, bindings, &push, sizeof push,
                  vulkan.grid_1d(groups_for(n_work, kElementThreads)));
}

void apr_device::kv_store(const apr_kv_store_args& args) {
  if (args.n_rows == 0 || args.kv_dim == 0) return;
  const uint64_t stride = args.src_row_stride ? args.src_row_stride : args.kv_dim;
  const apr_buffer& k = buffer(args.k, "k");
  const apr_buffer& v = buffer(args.v, "v");
  const apr_buffer& k_cache = buffer(args.k_cache, "k_cache");
  const apr_buffer& v_cache = buffer(args.v_cache, "v_cache");
  const uint64_t row_bytes = uint64_t(args.kv_dim) * 4;
  const uint64_t dst_offset = uint64_t(args.pos0) * row_bytes;
  const uint64_t dst_bytes = uint64_t(args.n_rows) * row_bytes;

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
  vulkan.copy(k.memory, k_cache.memory, k_regions);
  vulkan.copy(v.memory, v_cache.memory, v_regions);
}

void apr_device::swiglu(const apr_swiglu_args& args) {
  const uint64_t n = uint64_t(args.n_rows) * args.n_cols;
  if (n == 0) return;
  require_u32(n, "n_rows x n_cols");
  const apr_buffer& gate = buffer(args.gate, "gate");
  const apr_buffer& up = buffer(args.up, "up");
  const apr_buffer& out = buffer(args.out, "out");
  const uint32_t activation = apr_sdk::gated_activation(args);
  // The activation's own stage: the trace names the function that was applied.
  const apr_stage act_stage =
      activation == APR_ACT_GELU_TANH ? APR_STAGE_FFN_GELU : APR_STAGE_FFN_SILU;
  const bool emit_act = wants(act_stage, args.layer);
  const DeviceBuffer* scratch = emit_act ? &vulkan.trace_scratch(n * 4) : nullptr;
  const std::array<Binding, 4> bindings = {
      vulkan.bind(gate.memory, args.gate_offset, n * 4),
      vulkan.bind(up.memory, args.up_offset, n * 4),
      vulkan.bind(out.memory, args.out_offset, n * 4),
      scratch ? vulkan.bind(*scratch, 0, n * 4) : vulkan.unused_binding()};
  const SwigluPush push{bindings[0].word_offset,
                        bindings[1].word_offset,
                        bindings[2].word_offset,
                        uint32_t(n),
                        emit_act ? 1u : 0u,
                        bindings[3].word_offset,
                        activation};
  vulkan.dispatch(Kernel::kSwiglu, 0, bindings, &push, sizeof push,
                  vulkan.grid_1d(groups_for(n, kElementThreads)));
  if (emit_act) {
    std::vector<float> act(n);
    const vk::BufferCopy region(0, 0, n * 4);
    vulkan.download(*scratch, {&region, 1}, act.data(), n * 4);
    trace.emit(act_stage, args.layer, act.data(), {args.n_rows, args.n_cols});
  }
}

void apr_device::unary(const apr_unary_args& args) {
  if (args.n == 0) return;
  require_u32(args.n, "n");
  const apr_buffer& x = buffer(args.x, "x");
  const apr_buffer& out = buffer(args.out, "out");
  const std::array<Binding, 2> bindings = {vulkan.bind(x.memory, args.x_offset, args.n * 4),
                                           vulkan.bind(out.memory, args.out_offset, args.n * 4)};
  const UnaryPush push{bindings[0].word_offset, bindings[1].word_offset, uint32_t(args.n), args.op,
                       args.alpha};
  vulkan.dispatch(Kernel::kUnary, 0, bindings, &push, sizeof push,
                  vulkan.grid_1d(groups_for(args.n, kElementThreads)));
}
