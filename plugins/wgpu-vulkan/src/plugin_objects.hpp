// SPDX-License-Identifier: MIT
// The plugin's opaque ABI objects. They live in the global namespace because plugin.h declares
// them there; the kit's bases (apr/kit/handles.hpp) carry what every backend has: sizes, shapes,
// names, the trace sink and the registry that owns the buffers and weights a device gave out.
#pragma once

#include <cstdint>
#include <memory>

#include "plugin_error.hpp"
#include "vulkan_device.hpp"

struct apr_buffer : apr_sdk::BufferBase {
  apr_buffer(apr_vk::Device& device, uint64_t nbytes) : memory(device, nbytes) {}

  apr_vk::ScopedBuffer memory;  // may be larger than BufferBase::nbytes
};

struct apr_weight : apr_sdk::WeightBase {
  apr_weight(apr_vk::Device& device, uint64_t nbytes) : memory(device, nbytes) {}

  apr_vk::ScopedBuffer memory;  // the GGUF blocks, unchanged
};

struct apr_device : apr_sdk::DeviceBase<apr_buffer, apr_weight> {
  explicit apr_device(const apr_vk::PhysicalDeviceEntry& entry) : vulkan(entry) {}
  // Buffers and weights free their memory through `vulkan`, which dies before the base's
  // registry would release them; the kit releases them first too, this only makes it certain.
  ~apr_device() override { release_handles(); }

  // Memory in device_memory.cpp. Kernels are recorded into the current batch; the kit has checked
  // every argument against the ABI (handles, ranges, strides, scalars), so a kernel refuses only
  // what this backend cannot do, with APR_ERR_UNSUPPORTED. kernels_weights.cpp: embed, matmul;
  // kernels_attention.cpp: attention, trace_emit; kernels_activations.cpp: the rest (rms_norm,
  // add, rope, kv_store, swiglu, unary).
  APR_SDK_DEVICE_METHODS
  void synchronize() { vulkan.flush(); }
  // No step_begin/step_end: without them the kit leaves the ABI's step capture unset.

  apr_vk::Device vulkan;
};
