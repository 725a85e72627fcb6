// SPDX-License-Identifier: MIT
// Weight upload and the two kernels that decode weights: embed and matmul.
#include <algorithm>
#include <array>
#include <string>

#include "plugin_objects.hpp"

namespace apr_vk {
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

std::string weight_label(const apr_weight& w) {
  return "weight '" + w.name + "' (" + w.format->name + ")";
}

// Largest byte range one binding may cover, less the slack its offset alignment can add.
uint64_t max_binding_bytes(const Device& vk) {
  return vk.limits().maxStorageBufferRange -
         std::min<uint64_t>(vk.limits().maxStorageBufferRange / 2,
                            std::max<uint64_t>(vk.limits().minStorageBufferOffsetAlignment, 4));
}

}  // namespace

void create_weight(apr_device& dev, const apr_weight_desc& desc, apr_weight** out) {
  const std::string name = desc.name ? desc.name : "(unnamed)";
  const WeightFormat* format = weight_format(desc.type);
  require(format != nullptr, APR_ERR_UNSUPPORTED,
          "weight '" + name + "': type " + std::to_string(desc.type) +
              " is not supported by the Vulkan backend");
  require(desc.n_cols > 0 && desc.n_rows > 0, APR_ERR_INVALID_ARGUMENT,
          "weight '" + name + "': empty shape");
  require(desc.n_cols % format->block_elems == 0, APR_ERR_INVALID_ARGUMENT,
          "weight '" + name + "': n_cols " + std::to_string(desc.n_cols) +
              " is not a multiple of the " + format->name + " block size " +
              std::to_string(format->block_elems));
  const unsigned __int128 row_bytes =
      (unsigned __int128)(desc.n_cols / format->block_elems) * format->block_bytes;
  const unsigned __int128 total = row_bytes * desc.n_rows;
  require(total == desc.nbytes, APR_ERR_INVALID_ARGUMENT,
          "weight '" + name + "': nbytes " + std::to_string(desc.nbytes) +
              " does not match n_rows x row bytes of the " + format->name + " shape");
  require(row_bytes < (1u << 30), APR_ERR_UNSUPPORTED,
          "weight '" + name + "': rows of more than 1 GiB are not supported");
  require(desc.data != nullptr, APR_ERR_INVALID_ARGUMENT, "weight '" + name + "': data is NULL");

  auto weight = std::make_unique<apr_weight>();
  weight->type = desc.type;
  weight->format = format;
  weight->n_cols = desc.n_cols;
  weight->n_rows = desc.n_rows;
  weight->row_bytes = uint64_t(row_bytes);
  weight->name = name;
  weight->memory = dev.vk->create_device_buffer(desc.nbytes);
  try {
    dev.vk->upload(weight->memory, 0, desc.data, desc.nbytes);
    dev.weights.insert(weight.get());
  } catch (...) {
    dev.vk->destroy_buffer(weight->memory);
    throw;
  }
  *out = weight.release();
}

void embed(apr_device& dev, const apr_embed_args& args) {
  const apr_weight& table = checked_weight(dev, args.table, "embed: table");
  if (args.n_rows == 0) return;
  require(args.token_ids != nullptr, APR_ERR_INVALID_ARGUMENT, "embed: token_ids is NULL");
  const apr_buffer& out = checked_buffer(dev, args.out, "embed: out");
  check_range(out, args.out_offset, view_bytes(args.n_rows, table.n_cols, table.n_cols),
              "embed: out");
  for (uint32_t r = 0; r < args.n_rows; ++r) {
    const int32_t token = args.token_ids[r];
    require(token >= 0 && uint64_t(token) < table.n_rows, APR_ERR_INVALID_ARGUMENT,
            "embed: token id " + std::to_string(token) + " (row " + std::to_string(r) +
                ") is outside " + weight_label(table) + " of " + std::to_string(table.n_rows) +
                " rows");
  }
  Device& vk = *dev.vk;
  for (uint32_t r = 0; r < args.n_rows; ++r) {
    // Only the one table row is bound, so tables beyond maxStorageBufferRange work too.
    const std::array<Binding, 2> bindings = {
        vk.bind(table.memory, uint64_t(args.token_ids[r]) * table.row_bytes, table.row_bytes),
        vk.bind(out.memory, args.out_offset + uint64_t(r) * table.n_cols * 4, table.n_cols * 4)};
    const EmbedPush push{bindings[0].lead_bytes, uint32_t(table.n_cols), bindings[1].word_offset};
    vk.dispatch(Kernel::kEmbed, table.type, bindings, &push, sizeof push,
                vk.grid_1d((table.n_cols + kEmbedThreads - 1) / kEmbedThreads));
  }
}

void matmul(apr_device& dev, const apr_matmul_args& args) {
  const apr_weight& w = checked_weight(dev, args.weight, "matmul: weight");
  const std::string label = "matmul " + weight_label(w);
  const uint64_t n_cols = w.n_cols, n_out = w.n_rows;
  const uint64_t x_stride = args.x_row_stride ? args.x_row_stride : n_cols;
  const uint64_t y_stride = args.y_row_stride ? args.y_row_stride : n_out;
  require(x_stride >= n_cols, APR_ERR_INVALID_ARGUMENT,
          label + ": x_row_stride " + std::to_string(x_stride) + " is below n_cols");
  require(y_stride >= n_out, APR_ERR_INVALID_ARGUMENT,
          label + ": y_row_stride " + std::to_string(y_stride) + " is below the output width");
  if (args.n_rows == 0) return;
  const apr_buffer& x = checked_buffer(dev, args.x, label + ": x");
  const apr_buffer& y = checked_buffer(dev, args.y, label + ": y");
  check_range(x, args.x_offset, view_bytes(args.n_rows, n_cols, x_stride), label + ": x");
  check_range(y, args.y_offset, view_bytes(args.n_rows, n_out, y_stride), label + ": y");
  const apr_buffer* bias = nullptr;
  if (args.bias != nullptr) {
    bias = &checked_buffer(dev, args.bias, label + ": bias");
    check_range(*bias, args.bias_offset, n_out * 4, label + ": bias");
  }

  Device& vk = *dev.vk;
  // Split weight rows and activation rows so that no binding exceeds maxStorageBufferRange:
  // a vocabulary-sized lm head is larger than that on some devices.
  const uint64_t max_bytes = max_binding_bytes(vk);
  const uint64_t weight_rows_per_call = std::max<uint64_t>(1, max_bytes / w.row_bytes);
  const uint64_t act_rows_per_call = std::max<uint64_t>(
      1, std::min<uint64_t>({max_bytes / (4 * x_stride), max_bytes / (4 * y_stride),
                             uint64_t(vk.limits().maxComputeWorkGroupCount[2]) * kMatmulRows}));
  for (uint64_t r0 = 0; r0 < args.n_rows; r0 += act_rows_per_call) {
    const uint64_t rows = std::min<uint64_t>(act_rows_per_call, args.n_rows - r0);
    for (uint64_t o0 = 0; o0 < n_out; o0 += weight_rows_per_call) {
      const uint64_t outs = std::min(weight_rows_per_call, n_out - o0);
      const std::array<Binding, 4> bindings = {
          vk.bind(w.memory, o0 * w.row_bytes, outs * w.row_bytes),
          vk.bind(x.memory, args.x_offset + r0 * x_stride * 4, view_bytes(rows, n_cols, x_stride)),
          bias ? vk.bind(bias->memory, args.bias_offset + o0 * 4, outs * 4) : vk.unused_binding(),
          vk.bind(y.memory, args.y_offset + (r0 * y_stride + o0) * 4,
                  view_bytes(rows, outs, y_stride))};
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
      auto groups = vk.grid_1d((outs + kMatmulOuts - 1) / kMatmulOuts);
      groups[2] = uint32_t((rows + kMatmulRows - 1) / kMatmulRows);
      vk.dispatch(Kernel::kMatmul, w.type, bindings, &push, sizeof push, groups);
    }
  }
}

}  // namespace apr_vk
