// SPDX-License-Identifier: MIT
// The two kernels that decode weights: embed and matmul.
#include <algorithm>
#include <array>

#include "plugin_objects.hpp"

using apr_sdk::view_bytes;
using apr_vk::Binding;
using apr_vk::Kernel;

namespace {

constexpr uint32_t kEmbedThreads = 64;  // WORKGROUP_SIZE of embed.comp
constexpr uint32_t kMatmulRows = 4;     // ROWS of matmul.comp
constexpr uint32_t kMatmulOuts = 4;     // OUTS of matmul.comp

struct MatmulPush {
  uint32_t w_off, row_bytes, n_cols, n_out, o_begin, x_off, x_stride, n_rows, has_bias, b_off,
      y_off, y_stride;
};

struct EmbedPush {
  uint32_t w_off, n_cols, y_off;
};

// Largest byte range one binding may cover, less the slack its offset alignment can add.
uint64_t max_binding_bytes(const apr_vk::Device& vk) {
  return vk.limits().maxStorageBufferRange -
         std::min<uint64_t>(vk.limits().maxStorageBufferRange / 2,
                            std::max<uint64_t>(vk.limits().minStorageBufferOffsetAlignment, 4));
}

}  // namespace

void apr_device::embed(const apr_embed_args& args) {
  if (args.n_rows == 0) return;
  const apr_weight& table = weight(args.table, "table");
  const apr_buffer& out = buffer(args.out, "out");
  for (uint32_t r = 0; r < args.n_rows; ++r) {
    // Only the one table row is bound, so tables beyond maxStorageBufferRange work too.
    const std::array<Binding, 2> bindings = {
        vulkan.bind(table.memory, uint64_t(args.token_ids[r]) * table.row_bytes, table.row_bytes),
        vulkan.bind(out.memory, args.out_offset + uint64_t(r) * table.n_cols * 4,
                    table.n_cols * 4)};
    const EmbedPush push{bindings[0].lead_bytes, uint32_t(table.n_cols), bindings[1].word_offset};
    vulkan.dispatch(Kernel::kEmbed, table.type->id, bindings, &push, sizeof push,
                    vulkan.grid_1d((table.n_cols + kEmbedThreads - 1) / kEmbedThreads));
  }
}

void apr_device::matmul(const apr_matmul_args& args) {
  if (args.n_rows == 0) return;
  const apr_weight& w = weight(args.weight, "weight");
  const uint64_t n_cols = w.n_cols, n_out = w.n_rows;
  const uint64_t x_stride = args.x_row_stride ? args.x_row_stride : n_cols;
  const uint64_t y_stride = args.y_row_stride ? args.y_row_stride : n_out;
  const apr_buffer& x = buffer(args.x, "x");
  const apr_buffer& y = buffer(args.y, "y");
  const apr_buffer* bias = args.bias ? &buffer(args.bias, "bias") : nullptr;

  // Split weight rows and activation rows so that no binding exceeds maxStorageBufferRange:
  // a vocabulary-sized lm head is larger than that on some devices.
  const uint64_t max_bytes = max_binding_bytes(vulkan);
  const uint64_t weight_rows_per_call = std::max<uint64_t>(1, max_bytes / w.row_bytes);
  const uint64_t act_rows_per_call = std::max<uint64_t>(
      1, std::min<uint64_t>({max_bytes / (4 * x_stride), max_bytes / (4 * y_stride),
                             uint64_t(vulkan.limits().maxComputeWorkGroupCount[2]) * kMatmulRows}));
  for (uint64_t r0 = 0; r0 < args.n_rows; r0 += act_rows_per_call) {
    const uint64_t rows = std::min<uint64_t>(act_rows_per_call, args.n_rows - r0);
    for (uint64_t o0 = 0; o0 < n_out; o0 += weight_rows_per_call) {
      const uint64_t outs = std::min(weight_rows_per_call, n_out - o0);
      const std::array<Binding, 4> bindings = {
          vulkan.bind(w.memory, o0 * w.row_bytes, outs * w.row_bytes),
          vulkan.bind(x.memory, args.x_offset + r0 * x_stride * 4,
                      view_bytes(rows, n_cols, x_stride, "x")),
          bias ? vulkan.bind(bias->memory, args.bias_offset + o0 * 4, outs * 4)
               : vulkan.unused_binding(),
          vulkan.bind(y.memory, args.y_offset + (r0 * y_stride + o0) * 4,
                      view_bytes(rows, outs, y_stride, "y"))};
      const MatmulPush push{bindings[0].lead_bytes,
                            uint32_t(w.row_bytes),
                            uint32_t(n_cols),
                            uint32_t(outs),
                            0,
                            bindings[1].word_offset,
                            uint32_t(x_stride),
                            uint32_t(rows),
                            bias ? 1u : 0u,
                            bindings[2].word_offset,
                            bindings[3].word_offset,
                            uint32_t(y_stride)};
      auto groups = vulkan.grid_1d((outs + kMatmulOuts - 1) / kMatmulOuts);
      groups[2] = uint32_t((rows + kMatmulRows - 1) / kMatmulRows);
      vulkan.dispatch(Kernel::kMatmul, w.type->id, bindings, &push, sizeof push, groups);
    }
  }
}
