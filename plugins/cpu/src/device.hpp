// SPDX-License-Identifier: MIT
// The plugin's opaque objects: a device (thread pool, kernel set, trace sink), its buffers and its
// weights. They live in the global namespace because plugin.h declares them there.
#pragma once

#include <apr/plugin_sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "isa_kernels.hpp"
#include "packed_weights.hpp"
#include "thread_pool.hpp"
#include "weight_formats.hpp"

struct apr_buffer {
  uint8_t* data = nullptr;  // 256-byte aligned, owned
  uint64_t size = 0;
};

struct apr_weight {
  const apr_cpu::WeightFormat* format = nullptr;
  uint64_t n_cols = 0;
  uint64_t n_rows = 0;
  uint64_t row_bytes = 0;
  const uint8_t* data = nullptr;  // owned_ or the host's persistent bytes
  std::unique_ptr<uint8_t[]> owned;
  // The full 16-row groups repacked for the device's integer kernels (empty where it has none).
  apr_cpu::PackedWeight packed;
  std::string name;

  const uint8_t* row(uint64_t r) const { return data + r * row_bytes; }
};

struct apr_device {
  explicit apr_device(unsigned n_threads, const apr_cpu::IsaKernels& isa)
      : pool(n_threads), kernels(isa) {}

  apr_cpu::ThreadPool pool;
  const apr_cpu::IsaKernels& kernels;
  apr_sdk::TraceSink trace;

  bool sink_wants(apr_stage stage, uint32_t layer) const { return trace.wants(stage, layer); }
};
