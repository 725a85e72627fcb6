// SPDX-License-Identifier: MIT
// Attention, and the trace path: trace_emit and the sink hand-off.
#include <array>
#include <string>
#include <vector>

#include "plugin_objects.hpp"

namespace apr_vk {
namespace {

constexpr uint32_t kMaxHeadDim = 256;  // MAX_HEAD_DIM of attention.comp

struct AttentionPush {
  uint32_t q_off, q_stride, n_rows, pos0, n_heads, group, head_dim, kv_dim, k_off, v_off, o_off;
  float scale;
  uint32_t emit, s_off, n_kv;
};

std::string stage_label(apr_stage stage, uint32_t layer) {
  return "stage " + std::to_string(stage) +
         (layer == APR_LAYER_NONE ? std::string() : " layer " + std::to_string(layer));
}

}  // namespace

void emit_trace(apr_device& dev, apr_stage stage, uint32_t layer,
                const std::vector<uint64_t>& shape, const float* data) {
  dev.trace.emit(stage, layer, data, uint32_t(shape.size()), shape.data());
}

void attention(apr_device& dev, const apr_attention_args& args) {
  require(args.n_heads > 0 && args.n_kv_heads > 0 && args.n_heads % args.n_kv_heads == 0,
          APR_ERR_INVALID_ARGUMENT,
          "attention: n_heads " + std::to_string(args.n_heads) +
              " is not a positive multiple of n_kv_heads " + std::to_string(args.n_kv_heads));
  require(args.head_dim > 0, APR_ERR_INVALID_ARGUMENT, "attention: head_dim is 0");
  require(args.head_dim <= kMaxHeadDim, APR_ERR_UNSUPPORTED,
          "attention: head_dim " + std::to_string(args.head_dim) +
              " exceeds the Vulkan kernel's limit of " + std::to_string(kMaxHeadDim));
  const uint64_t q_width = uint64_t(args.n_heads) * args.head_dim;
  const uint64_t q_stride = args.q_row_stride ? args.q_row_stride : q_width;
  require(q_stride >= q_width, APR_ERR_INVALID_ARGUMENT,
          "attention: q_row_stride " + std::to_string(q_stride) + " is below n_heads x head_dim");
  if (args.n_rows == 0) return;
  const apr_buffer& q = checked_buffer(dev, args.q, "attention: q");
  const apr_buffer& k_cache = checked_buffer(dev, args.k_cache, "attention: k_cache");
  const apr_buffer& v_cache = checked_buffer(dev, args.v_cache, "attention: v_cache");
  const apr_buffer& out = checked_buffer(dev, args.out, "attention: out");
  const uint64_t kv_dim = uint64_t(args.n_kv_heads) * args.head_dim;
  const uint64_t n_kv = uint64_t(args.pos0) + args.n_rows;
  const uint64_t q_bytes = view_bytes(args.n_rows, q_width, q_stride);
  const uint64_t cache_bytes = view_bytes(n_kv, kv_dim, kv_dim);
  const uint64_t out_bytes = view_bytes(args.n_rows, q_width, q_width);
  check_range(q, args.q_offset, q_bytes, "attention: q");
  check_range(k_cache, 0, cache_bytes, "attention: k_cache (rows 0..pos0+n_rows)");
  check_range(v_cache, 0, cache_bytes, "attention: v_cache (rows 0..pos0+n_rows)");
  check_range(out, args.out_offset, out_bytes, "attention: out");
  Device& vk = *dev.vk;
  require(args.n_heads <= vk.limits().maxComputeWorkGroupCount[0] &&
              args.n_rows <= vk.limits().maxComputeWorkGroupCount[1],
          APR_ERR_UNSUPPORTED, "attention: too many heads or rows for one dispatch");

  const bool want_scores = trace_wanted(dev, APR_STAGE_ATTN_SCORES, args.layer);
  const bool want_softmax = trace_wanted(dev, APR_STAGE_ATTN_SOFTMAX, args.layer);
  const bool emit = want_scores || want_softmax;
  const uint64_t traced = uint64_t(args.n_heads) * args.n_rows * n_kv;  // floats per stage
  const DeviceBuffer* scratch = emit ? &vk.trace_scratch(2 * traced * 4) : nullptr;

  const std::array<Binding, 5> bindings = {
      vk.bind(q.memory, args.q_offset, q_bytes), vk.bind(k_cache.memory, 0, cache_bytes),
      vk.bind(v_cache.memory, 0, cache_bytes), vk.bind(out.memory, args.out_offset, out_bytes),
      scratch ? vk.bind(*scratch, 0, 2 * traced * 4) : vk.unused_binding()};
  const AttentionPush push{bindings[0].word_offset,
                           uint32_t(q_stride),
                           args.n_rows,
                           args.pos0,
                           args.n_heads,
                           args.n_heads / args.n_kv_heads,
                           args.head_dim,
                           uint32_t(kv_dim),
                           bindings[1].word_offset,
                           bindings[2].word_offset,
                           bindings[3].word_offset,
                           args.scale,
                           emit ? 1u : 0u,
                           bindings[4].word_offset,
                           uint32_t(n_kv)};
  vk.dispatch(Kernel::kAttention, 0, bindings, &push, sizeof push, {args.n_heads, args.n_rows, 1});
  if (!emit) return;

  std::vector<float> host(2 * traced);
  const vk::BufferCopy region(0, 0, 2 * traced * 4);
  vk.download(*scratch, {&region, 1}, host.data(), 2 * traced * 4);
  const std::vector<uint64_t> shape = {args.n_heads, args.n_rows, n_kv};
  if (want_scores) emit_trace(dev, APR_STAGE_ATTN_SCORES, args.layer, shape, host.data());
  if (want_softmax) {
    emit_trace(dev, APR_STAGE_ATTN_SOFTMAX, args.layer, shape, host.data() + traced);
  }
}

void trace_emit(apr_device& dev, const apr_trace_emit_args& args) {
  if (!trace_wanted(dev, args.stage, args.layer)) return;
  const uint64_t stride = args.row_stride ? args.row_stride : args.n_cols;
  require(stride >= args.n_cols, APR_ERR_INVALID_ARGUMENT,
          "trace_emit: row_stride " + std::to_string(stride) + " is below n_cols");
  const apr_buffer& buffer = checked_buffer(dev, args.buffer, "trace_emit: buffer");
  check_range(buffer, args.offset, view_bytes(args.n_rows, args.n_cols, stride),
              "trace_emit (" + stage_label(args.stage, args.layer) + ")");
  const uint64_t row_bytes = uint64_t(args.n_cols) * 4;
  std::vector<float> host(uint64_t(args.n_rows) * args.n_cols);
  std::vector<vk::BufferCopy> regions;
  if (stride == args.n_cols || args.n_rows <= 1) {
    if (!host.empty()) regions.emplace_back(args.offset, 0, host.size() * 4);
  } else {
    for (uint64_t r = 0; r < args.n_rows; ++r) {
      regions.emplace_back(args.offset + r * stride * 4, r * row_bytes, row_bytes);
    }
  }
  dev.vk->download(buffer.memory, regions, host.data(), host.size() * 4);
  std::vector<uint64_t> shape = {args.n_rows, args.n_cols};
  if (args.n_rows == 1 && args.stage == APR_STAGE_LM_HEAD) shape = {args.n_cols};
  emit_trace(dev, args.stage, args.layer, shape, host.data());
}

}  // namespace apr_vk
