// SPDX-License-Identifier: MIT
// The plugin's opaque objects as the kit sees them. A backend defines apr_buffer, apr_weight and
// apr_device (plugin.h declares them) deriving from these bases; the kit keeps the registry of
// what each device gave out, so a NULL, foreign or freed handle is refused with a message before a
// backend ever sees it, and everything a device still holds is released when it closes.
#pragma once

#include <apr/plugin.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "failure.hpp"
#include "names.hpp"
#include "trace_sink.hpp"

namespace apr_sdk {

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
