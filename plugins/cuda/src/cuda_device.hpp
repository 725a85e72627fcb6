// SPDX-License-Identifier: MIT
// The plugin's opaque objects: a device (one CUDA device, its stream and reusable scratch), its
// buffers and its weights. They live in the global namespace because plugin.h declares them there;
// the kit's bases (apr/kit/handles.hpp) carry sizes, shapes, names, the registry and the trace
// sink. Kernel arguments reach the methods below already checked by the kit.
//
// Include <apr/plugin_sdk.hpp> only after this header: the kit's table and argument checks name
// apr_device, apr_buffer and apr_weight outside any template, so they must be complete by then.
#pragma once

#include <cuda_runtime_api.h>

#include <apr/kit/handles.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "kernels.hpp"

namespace apr_sdk {
struct WeightSpec;
}

namespace apr_cuda {

// Throws apr_sdk::Failure naming `what`: APR_ERR_OUT_OF_MEMORY for allocation failures,
// APR_ERR_DEVICE for every other CUDA error.
void check_cuda(cudaError_t err, const std::string& what);

// Logs a warning from a path that must not throw (destructors).
void warn(const char* message) noexcept;

// Grow-only memory reused across calls (trace copies, token ids).
struct GrowBuffer {
  void* ptr = nullptr;
  uint64_t size = 0;
};

}  // namespace apr_cuda

struct apr_buffer : apr_sdk::BufferBase {
  explicit apr_buffer(int device_ordinal) : ordinal(device_ordinal) {}
  ~apr_buffer();  // cudaFree; never throws
  apr_buffer(const apr_buffer&) = delete;
  apr_buffer& operator=(const apr_buffer&) = delete;

  // Device address of byte `offset` (the kit has checked the view that starts there).
  float* at(uint64_t offset) const {
    return reinterpret_cast<float*>(static_cast<char*>(ptr) + offset);
  }

  int ordinal;
  void* ptr = nullptr;  // cudaMalloc memory, 256-byte aligned, owned
};

struct apr_weight : apr_sdk::WeightBase {
  explicit apr_weight(int device_ordinal) : ordinal(device_ordinal) {}
  ~apr_weight();  // cudaFree; never throws
  apr_weight(const apr_weight&) = delete;
  apr_weight& operator=(const apr_weight&) = delete;

  // The launchers' view; built on use because the kit fills the shape after weight_create.
  apr_cuda::DeviceWeight device() const { return {type->id, n_rows, n_cols, row_bytes, data}; }

  int ordinal;
  uint8_t* data = nullptr;  // n_rows rows of row_bytes in the GGUF block encoding, owned
};

struct apr_device : apr_sdk::DeviceBase<apr_buffer, apr_weight> {
  explicit apr_device(int device_ordinal);  // creates the stream and event; throws
  ~apr_device() override;                   // waits for the stream, then frees; never throws

  // Memory and weights in cuda_device.cpp; kernels in kernel_calls.cpp (CUDA's own limits, then
  // the launch). No step_begin/step_end: kernels run eagerly, so the kit leaves those NULL.
  APR_SDK_DEVICE_METHODS
  void synchronize();

  // Makes this device current for the calling thread.
  void select() const;
  // Device scratch of at least nbytes, kept for later calls.
  void* scratch(apr_cuda::GrowBuffer& b, uint64_t nbytes, const char* what);
  // Pinned host staging of at least nbytes, kept for later calls.
  void* staging(apr_cuda::GrowBuffer& b, uint64_t nbytes, const char* what);
  // Copies n_rows rows of n_cols f32 (stride elements apart) to pinned staging, waits for the
  // stream and hands them to the trace sink shaped shape[0..ndim). Only the view travels.
  void emit_view(apr_stage stage, uint32_t layer, const float* src, uint64_t n_rows,
                 uint64_t n_cols, uint64_t stride, uint32_t ndim, const uint64_t* shape);

  int ordinal;
  cudaStream_t stream = nullptr;  // non-blocking; every kernel and copy of this device runs on it
  apr_cuda::GrowBuffer trace_scratch;  // device: traced attention's scores and probabilities
  apr_cuda::GrowBuffer trace_staging;  // pinned host: trace tensors on their way to the sink
  apr_cuda::GrowBuffer ids_device;     // device: embed's token ids
  apr_cuda::GrowBuffer ids_staging;    // pinned host, free to reuse once ids_copied has fired
  cudaEvent_t ids_copied = nullptr;
};
