// SPDX-License-Identifier: MIT
// The plugin's opaque objects: a device (thread pool, kernel set, trace sink), its buffers and its
// weights. They live in the global namespace because plugin.h declares them there; the kit's bases
// (apr/kit/handles.hpp) carry what every backend has (sizes, shapes, names, the registry).
#pragma once

#include <apr/plugin_sdk.hpp>

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "isa_kernels.hpp"
#include "kernels.hpp"
#include "packed_weights.hpp"
#include "thread_pool.hpp"

struct apr_buffer : apr_sdk::BufferBase {
  explicit apr_buffer(uint8_t* memory) : data(memory) {}
  ~apr_buffer() { std::free(data); }
  apr_buffer(const apr_buffer&) = delete;
  apr_buffer& operator=(const apr_buffer&) = delete;

  uint8_t* data;  // 256-byte aligned, owned
};

struct apr_weight : apr_sdk::WeightBase {
  const uint8_t* data = nullptr;  // owned or the host's persistent bytes
  std::unique_ptr<uint8_t[]> owned;
  // The full 16-row groups repacked for the device's integer kernels (empty where it has none).
  apr_cpu::PackedWeight packed;

  const uint8_t* row(uint64_t r) const { return data + r * row_bytes; }
};

struct apr_device : apr_sdk::DeviceBase<apr_buffer, apr_weight> {
  apr_device(unsigned n_threads, const apr_cpu::IsaKernels& isa) : pool(n_threads), kernels(isa) {}

  apr_cpu::ThreadPool pool;
  const apr_cpu::IsaKernels& kernels;

  // Memory, weights and kernel methods in device_methods.cpp; each kernel method calls its run_*
  // function (kernels.hpp) with arguments the kit has checked.
  APR_SDK_DEVICE_METHODS
  void synchronize() {}  // every kernel has finished when it returns

  // Kernels run eagerly, so the step markers do nothing beyond the kit's checks of their
  // arguments (plugin.h allows that); they exist so the conformance suite exercises the host's
  // side of the protocol.
  void step_begin(const apr_step_args&) {}
  void step_end(const apr_step_args&) {}
};
