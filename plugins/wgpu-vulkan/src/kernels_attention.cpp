// SPDX-License-Identifier: MIT
// Attention, and trace_emit: the kernels that hand tensors to the trace sink.
#include <array>
#include <string>
#include <vector>

#include "plugin_objects.hpp"

using apr_sdk::view_bytes;
using apr_vk::Binding;
using apr_vk::DeviceBuffer;
using apr_vk::Kernel;

namespace {

constexpr uint32_t kMaxHeadDim = 256;  // MAX_HEAD_DIM of attention.comp

struct AttentionPush {
  uint32_t q_off, q_stride, n_rows, pos0, n_heads, group, head_dim, kv_dim, k_off, v_off, o_off;
  float scale;
  uint32_t emit, s_off, n_kv, window;
  float softcap;
};

}  // namespace

void apr_device::attention(const apr_attention_args& args) {
  apr_vk::require(args.head_dim <= kMaxHeadDim, APR_ERR_UNSUPPORTED,
                  "head_dim " + std::to_string(args.head_dim) +
                      " exceeds the Vulkan kernel's limit of " + std::to_string(kMaxHeadDim));
  if (args.n_rows == 0) return;
  const auto& limits = vulkan.limits();
  apr_vk::require(args.n_heads <= limits.maxComputeWorkGroupCount[0] &&
                      args.n_rows <= limits.maxComputeWorkGroupCount[1],
                  APR_ERR_UNSUPPORTED, "too many heads or rows for one dispatch");
  const apr_buffer& q = buffer(args.q, "q");
  const apr_buffer& k_cache = buffer(args.k_cache, "k_cache");
  const apr_buffer& v_cache = buffer(args.v_cache, "v_cache");
  const apr_buffer& out = buffer(args.out, "out");
  const uint64_t q_width = uint64_t(args.n_heads) * args.head_dim;
  const uint64_t q_stride = args.q_row_stride ? args.q_row_stride : q_width;
  const uint64_t kv_dim = uint64_t(args.n_kv_heads) * args.head_dim;
  const uint64_t n_kv = uint64_t(args.pos0) + args.n_rows;
  const uint64_t q_bytes = view_bytes(args.n_rows, q_width, q_stride, "q");
  const uint64_t cache_bytes = view_bytes(n_kv, kv_dim, kv_dim, "cache");
  const uint64_t out_bytes = view_bytes(args.n_rows, q_width, q_width, "out");

  const bool want_scores = wants(APR_STAGE_ATTN_SCORES, args.layer);
  const bool want_softmax = wants(APR_STAGE_ATTN_SOFTMAX, args.layer);
  const bool emit = want_scores || want_softmax;
  const uint64_t traced = uint64_t(args.n_heads) * args.n_rows * n_kv;  // floats per stage
  const DeviceBuffer* scratch = emit ? &vulkan.trace_scratch(2 * traced * 4) : nullptr;

  const std::array<Binding, 5> bindings = {
      vulkan.bind(q.memory, args.q_offset, q_bytes), vulkan.bind(k_cache.memory, 0, cache_bytes),
      vulkan.bind(v_cache.memory, 0, cache_bytes),
      vulkan.bind(out.memory, args.out_offset, out_bytes),
      scratch ? vulkan.bind(*scratch, 0, 2 * traced * 4) : vulkan.unused_binding()};
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
                           uint32_t(n_kv),
                           apr_sdk::attention_window(args),
                           apr_sdk::attention_softcap(args)};
  vulkan.dispatch(Kernel::kAttention, 0, bindings, &push, sizeof push,
                  {args.n_heads, args.n_rows, 1});
  if (!emit) return;

  std::vector<float> host(2 * traced);
  const vk::BufferCopy region(0, 0, 2 * traced * 4);
  vulkan.download(*scratch, {&region, 1}, host.data(), 2 * traced * 4);
  const uint64_t shape[] = {args.n_heads, args.n_rows, n_kv};
  if (want_scores) trace.emit(APR_STAGE_ATTN_SCORES, args.layer, host.data(), 3, shape);
  if (want_softmax) trace.emit(APR_STAGE_ATTN_SOFTMAX, args.layer, host.data() + traced, 3, shape);
}

void apr_device::trace_emit(const apr_trace_emit_args& args) {
  if (!wants(args.stage, args.layer)) return;
  const uint64_t stride = args.row_stride ? args.row_stride : args.n_cols;
  const apr_buffer& b = buffer(args.buffer, "buffer");
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
  vulkan.download(b.memory, regions, host.data(), host.size() * 4);
  uint64_t shape[2];
  const uint32_t ndim = apr_sdk::emitted_shape(args.stage, args.n_rows, args.n_cols, shape);
  trace.emit(args.stage, args.layer, host.data(), ndim, shape);
}
