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

  // Memory (plugin_entry.cpp).
  std::unique_ptr<apr_buffer> buffer_alloc(uint64_t nbytes);
  void buffer_write(apr_buffer& b, uint64_t offset, const void* src, uint64_t nbytes);
  void buffer_read(const apr_buffer& b, uint64_t offset, void* dst, uint64_t nbytes);
  void synchronize() {}  // every kernel has finished when it returns
  std::unique_ptr<apr_weight> weight_create(const apr_sdk::WeightSpec& spec);

  // Kernels: arguments already checked by the kit.
  void embed(const apr_embed_args& a) { apr_cpu::run_embed(*this, a); }
  void rms_norm(const apr_rms_norm_args& a) { apr_cpu::run_rms_norm(*this, a); }
  void matmul(const apr_matmul_args& a) { apr_cpu::run_matmul(*this, a); }
  void add(const apr_add_args& a) { apr_cpu::run_add(*this, a); }
  void rope(const apr_rope_args& a) { apr_cpu::run_rope(*this, a); }
  void kv_store(const apr_kv_store_args& a) { apr_cpu::run_kv_store(*this, a); }
  void attention(const apr_attention_args& a) { apr_cpu::run_attention(*this, a); }
  void swiglu(const apr_swiglu_args& a) { apr_cpu::run_swiglu(*this, a); }
  void trace_emit(const apr_trace_emit_args& a) { apr_cpu::run_trace_emit(*this, a); }

  // Kernels run eagerly, so the step markers do nothing beyond the kit's checks of their
  // arguments (plugin.h allows that); they exist so the conformance suite exercises the host's
  // side of the protocol.
  void step_begin(const apr_step_args&) {}
  void step_end(const apr_step_args&) {}
};
