// SPDX-License-Identifier: MIT
// Host side of the CUDA plugin: device, buffer and weight objects and one function per entry
// point of apr_plugin_api. These functions throw apr_cuda::Failure; plugin_entry.cpp turns that
// into a status and an error message at the ABI boundary.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "apr/plugin.h"
#include "kernels.hpp"

struct apr_buffer {
  void* ptr = nullptr;
  uint64_t size = 0;  // bytes the host asked for; the bound every access is checked against
};

struct apr_weight {
  apr_cuda::DeviceWeight device;
  std::string name;
};

// Grow-only memory reused across calls (trace copies, token ids).
struct GrowBuffer {
  void* ptr = nullptr;
  uint64_t size = 0;
};

struct apr_device {
  int ordinal = 0;
  cudaStream_t stream = nullptr;
  bool has_sink = false;
  apr_trace_sink sink{};
  GrowBuffer trace_scratch;  // device
  GrowBuffer trace_staging;  // pinned host
  GrowBuffer ids_device;     // device
  GrowBuffer ids_staging;    // pinned host, free to reuse once ids_copied has fired
  cudaEvent_t ids_copied = nullptr;
};

namespace apr_cuda {

struct Failure {
  apr_status status;
  std::string message;
};

[[noreturn]] void fail(apr_status status, std::string message);
// Throws APR_ERR_DEVICE (APR_ERR_OUT_OF_MEMORY for allocation failures) naming `what`.
void check_cuda(cudaError_t err, const std::string& what);

// NUL-terminated copy of src into dst[size], cut to fit (the ABI's rule for output strings).
void copy_truncated(char* dst, size_t size, const char* src);

void log_message(int32_t level, const std::string& message);
void set_host(const apr_host* host);

// Compute capability this build carries code for (see CMAKE_CUDA_ARCHITECTURES).
constexpr int kMinComputeMajor = 8;

uint32_t device_count();
void device_info(uint32_t index, apr_device_info* info);
apr_device* device_open(uint32_t index);
void device_close(apr_device* dev);
void set_trace_sink(apr_device& dev, const apr_trace_sink* sink);

apr_buffer* buffer_alloc(apr_device& dev, uint64_t nbytes);
void buffer_free(apr_device& dev, apr_buffer* buffer);
void buffer_write(apr_device& dev, apr_buffer* buffer, uint64_t offset, const void* src,
                  uint64_t nbytes);
void buffer_read(apr_device& dev, const apr_buffer* buffer, uint64_t offset, void* dst,
                 uint64_t nbytes);
void synchronize(apr_device& dev);

apr_weight* weight_create(apr_device& dev, const apr_weight_desc& desc);
void weight_free(apr_device& dev, apr_weight* weight);

void embed(apr_device& dev, const apr_embed_args& a);
void rms_norm(apr_device& dev, const apr_rms_norm_args& a);
void matmul(apr_device& dev, const apr_matmul_args& a);
void add(apr_device& dev, const apr_add_args& a);
void rope(apr_device& dev, const apr_rope_args& a);
void kv_store(apr_device& dev, const apr_kv_store_args& a);
void attention(apr_device& dev, const apr_attention_args& a);
void swiglu(apr_device& dev, const apr_swiglu_args& a);
void trace_emit(apr_device& dev, const apr_trace_emit_args& a);

}  // namespace apr_cuda
