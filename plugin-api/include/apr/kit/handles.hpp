// SPDX-License-Identifier: MIT
// The plugin's opaque objects as the kit sees them. A backend defines apr_buffer, apr_weight and
// apr_device (plugin.h declares them) deriving from these bases; the kit keeps the registry of
// what each device gave out, so a NULL, foreign or freed handle is refused with a message before a
// backend ever sees it, and everything a device still holds is released when it closes. The one
// list of kernels (APR_SDK_KERNELS) and the device methods it implies are at the end.
#pragma once

#include <apr/plugin.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "failure.hpp"
#include "names.hpp"
#include "trace_sink.hpp"

namespace apr_sdk {

// A weight_create request after the kit checked it against the type's block geometry.
struct WeightSpec {
  const WeightType& type;
  uint64_t n_cols;
  uint64_t n_rows;
  uint64_t row_bytes;
  const void* data;  // n_rows * row_bytes bytes
  bool persistent;   // APR_WEIGHT_DATA_PERSISTENT: data outlives the weight
  const std::string& name;
};

struct BufferBase {
  uint64_t nbytes = 0;  // as the host asked; every view is checked against it
};

struct WeightBase {
  const WeightType* type = nullptr;
  uint64_t n_cols = 0;
  uint64_t n_rows = 0;
  uint64_t row_bytes = 0;
  std::string name;  // the tensor's name, for messages
};

// Handles of one kind a device gave out; owns them.
template <typename Handle>
class HandleRegistry {
 public:
  Handle* adopt(std::unique_ptr<Handle> handle) {
    Handle* raw = handle.get();
    owned_.emplace(raw, std::move(handle));
    return raw;
  }
  // nullptr when `handle` is not one of ours (foreign, freed, or NULL).
  Handle* find(const Handle* handle) const {
    const auto it = owned_.find(handle);
    return it == owned_.end() ? nullptr : it->second.get();
  }
  // Destroys the handle; false when it was not ours.
  bool destroy(const Handle* handle) { return owned_.erase(handle) != 0; }
  void clear() { owned_.clear(); }

 private:
  std::unordered_map<const Handle*, std::unique_ptr<Handle>> owned_;
};

// Base of the backend's apr_device. Buffer and Weight are the backend's apr_buffer/apr_weight.
template <typename Buffer, typename Weight>
class DeviceBase {
 public:
  DeviceBase() = default;
  DeviceBase(const DeviceBase&) = delete;
  DeviceBase& operator=(const DeviceBase&) = delete;
  virtual ~DeviceBase() = default;

  // A live buffer or weight of this device; refuses anything else, naming `what`.
  Buffer& buffer(const Buffer* handle, const char* what) const {
    if (!handle) invalid(std::string(what) + " is NULL");
    Buffer* b = buffers_.find(handle);
    if (!b) invalid(std::string(what) + " is not a live buffer of this device");
    return *b;
  }
  Weight& weight(const Weight* handle, const char* what) const {
    if (!handle) invalid(std::string(what) + " is NULL");
    Weight* w = weights_.find(handle);
    if (!w) invalid(std::string(what) + " is not a live weight of this device");
    return *w;
  }

  bool wants(apr_stage stage, uint32_t layer) const { return trace.wants(stage, layer); }

  TraceSink trace;

  // For the kit's table (plugin_table.hpp).
  HandleRegistry<Buffer>& buffer_registry() { return buffers_; }
  HandleRegistry<Weight>& weight_registry() { return weights_; }
  // Called before the device is deleted, while the backend's own members still exist.
  void release_handles() {
    weights_.clear();
    buffers_.clear();
  }

 private:
  HandleRegistry<Buffer> buffers_;
  HandleRegistry<Weight> weights_;
};

}  // namespace apr_sdk

// The kernels of the ABI, once: (member of apr_plugin_api = backend method, argument struct).
// Adding a kernel adds one line here, its least size to abi_structs.hpp and its rules to
// kernel_checks.hpp (docs/PLUGIN-ABI.md, "Adding a kernel").
#define APR_SDK_KERNELS(X)           \
  X(embed, apr_embed_args)           \
  X(rms_norm, apr_rms_norm_args)     \
  X(matmul, apr_matmul_args)         \
  X(add, apr_add_args)               \
  X(rope, apr_rope_args)             \
  X(kv_store, apr_kv_store_args)     \
  X(attention, apr_attention_args)   \
  X(swiglu, apr_swiglu_args)         \
  X(trace_emit, apr_trace_emit_args) \
  X(unary, apr_unary_args)

// Declares, inside a backend's apr_device, the methods the table calls: memory, weights and one
// per kernel, so the list is written once (synchronize and the optional step markers are the
// backend's to declare).
#define APR_SDK_DECLARE_KERNEL_METHOD(fn, Args) void fn(const Args& args);
#define APR_SDK_DEVICE_METHODS                                                              \
  std::unique_ptr<apr_buffer> buffer_alloc(uint64_t nbytes);                                \
  void buffer_write(apr_buffer& buffer, uint64_t offset, const void* src, uint64_t nbytes); \
  void buffer_read(const apr_buffer& buffer, uint64_t offset, void* dst, uint64_t nbytes);  \
  std::unique_ptr<apr_weight> weight_create(const apr_sdk::WeightSpec& spec);               \
  APR_SDK_KERNELS(APR_SDK_DECLARE_KERNEL_METHOD)
