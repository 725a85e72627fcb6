// SPDX-License-Identifier: MIT
// The plugin's opaque ABI objects and the argument checks every kernel shares.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "apr/plugin.h"
#include "plugin_error.hpp"
#include "vulkan_device.hpp"
#include "weight_format.hpp"

struct apr_buffer {
  apr_vk::DeviceBuffer memory;
  uint64_t nbytes = 0;  // as requested by the host; memory.size may be larger
};

struct apr_weight {
  apr_vk::DeviceBuffer memory;  // the GGUF blocks, unchanged
  apr_type type = 0;
  const apr_vk::WeightFormat* format = nullptr;
  uint64_t n_cols = 0;
  uint64_t n_rows = 0;
  uint64_t row_bytes = 0;
  std::string name;
};

struct apr_device {
  std::unique_ptr<apr_vk::Device> vk;
  apr_sdk::TraceSink trace;
  // Handles this device gave out, so foreign or freed ones are refused instead of used.
  std::unordered_set<const apr_buffer*> buffers;
  std::unordered_set<const apr_weight*> weights;
};

namespace apr_vk {

// Argument structs: refused when NULL or smaller than their ABI 1.0 size (never sizeof).
using apr_sdk::checked_args;

inline const apr_buffer& checked_buffer(const apr_device& dev, const apr_buffer* buffer,
                                        const std::string& what) {
  require(buffer != nullptr, APR_ERR_INVALID_ARGUMENT, what + " is NULL");
  require(dev.buffers.count(buffer) != 0, APR_ERR_INVALID_ARGUMENT,
          what + " is not a live buffer of this device");
  return *buffer;
}

inline const apr_weight& checked_weight(const apr_device& dev, const apr_weight* weight,
                                        const std::string& what) {
  require(weight != nullptr, APR_ERR_INVALID_ARGUMENT, what + " is NULL");
  require(dev.weights.count(weight) != 0, APR_ERR_INVALID_ARGUMENT,
          what + " is not a live weight of this device");
  return *weight;
}

// Bytes spanned by n_rows rows of n_cols f32 spaced row_stride elements apart.
inline uint64_t view_bytes(uint64_t n_rows, uint64_t n_cols, uint64_t row_stride) {
  if (n_rows == 0 || n_cols == 0) return 0;
  const unsigned __int128 elems = (unsigned __int128)(n_rows - 1) * row_stride + n_cols;
  const unsigned __int128 bytes = elems * 4;
  require(bytes < ((unsigned __int128)1 << 62), APR_ERR_INVALID_ARGUMENT,
          "tensor view size overflows");
  return uint64_t(bytes);
}

// offset is 4-aligned and [offset, offset + nbytes) lies inside the buffer.
inline void check_range(const apr_buffer& buffer, uint64_t offset, uint64_t nbytes,
                        const std::string& what) {
  require(offset % 4 == 0, APR_ERR_INVALID_ARGUMENT,
          what + ": offset " + std::to_string(offset) + " is not a multiple of 4");
  require(offset <= buffer.nbytes && nbytes <= buffer.nbytes - offset, APR_ERR_INVALID_ARGUMENT,
          what + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + nbytes) +
              ") lie outside the buffer of " + std::to_string(buffer.nbytes) + " bytes");
}

inline bool trace_wanted(const apr_device& dev, apr_stage stage, uint32_t layer) {
  return dev.trace.wants(stage, layer);
}

// Hands a host copy of a tensor to the sink; a refusal aborts the calling kernel.
void emit_trace(apr_device& dev, apr_stage stage, uint32_t layer,
                const std::vector<uint64_t>& shape, const float* data);

// The kernel entry points, called by plugin_entry.cpp with checked device pointers.
void create_weight(apr_device& dev, const apr_weight_desc& desc, apr_weight** out);
void embed(apr_device& dev, const apr_embed_args& args);
void matmul(apr_device& dev, const apr_matmul_args& args);
void rms_norm(apr_device& dev, const apr_rms_norm_args& args);
void add(apr_device& dev, const apr_add_args& args);
void rope(apr_device& dev, const apr_rope_args& args);
void kv_store(apr_device& dev, const apr_kv_store_args& args);
void swiglu(apr_device& dev, const apr_swiglu_args& args);
void attention(apr_device& dev, const apr_attention_args& args);
void trace_emit(apr_device& dev, const apr_trace_emit_args& args);

}  // namespace apr_vk
