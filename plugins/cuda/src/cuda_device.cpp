// SPDX-License-Identifier: MIT
// A CUDA device's lifetime, memory, weights and trace copies. Every call runs on the device's one
// non-blocking stream; only buffer_read, synchronize and trace emission wait for all of it, and
// buffer_write and weight_create wait for their own copy (the host may reuse the source at once).
#include "cuda_device.hpp"

#include <apr/plugin_sdk.hpp>  // after the handle types (see cuda_device.hpp)

#include <algorithm>

using apr_cuda::check_cuda;
using apr_sdk::num;

namespace apr_cuda {

void check_cuda(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so the next launch check is not misled
  const apr_status status =
      err == cudaErrorMemoryAllocation ? APR_ERR_OUT_OF_MEMORY : APR_ERR_DEVICE;
  apr_sdk::fail(status, what + ": " + cudaGetErrorString(err));
}

void warn(const char* message) noexcept {
  try {
    apr_sdk::log(APR_LOG_WARN, message);
  } catch (...) {
    // Out of memory for the message: the warning is lost, nothing else.
  }
}

namespace {

// Frees device memory of `ordinal` from a destructor: errors can only be logged.
void free_device_memory(int ordinal, void* ptr, const char* warning) noexcept {
  if (!ptr) return;
  if (cudaSetDevice(ordinal) != cudaSuccess || cudaFree(ptr) != cudaSuccess) {
    (void)cudaGetLastError();
    warn(warning);
  }
}

}  // namespace
}  // namespace apr_cuda

apr_buffer::~apr_buffer() {
  apr_cuda::free_device_memory(ordinal, ptr, "cuda: cudaFree of a buffer failed");
}

apr_weight::~apr_weight() {
  apr_cuda::free_device_memory(ordinal, data, "cuda: cudaFree of a weight failed");
}

apr_device::apr_device(int device_ordinal) : ordinal(device_ordinal) {
  select();
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  const cudaError_t err = cudaEventCreateWithFlags(&ids_copied, cudaEventDisableTiming);
  if (err != cudaSuccess) {
    // A throwing constructor runs no destructor: undo the stream here.
    (void)cudaStreamDestroy(stream);
    check_cuda(err, "cudaEventCreate");
  }
}

apr_device::~apr_device() {
  // The kit releases the handles before deleting the device; doing it again (a no-op then) keeps
  // every cudaFree ahead of the stream's destruction whoever deletes the device.
  release_handles();
  if (cudaSetDevice(ordinal) != cudaSuccess || cudaStreamSynchronize(stream) != cudaSuccess)
    apr_cuda::warn("cuda: closing a device: the device reported an error");
  if (trace_scratch.ptr) (void)cudaFree(trace_scratch.ptr);
  if (ids_device.ptr) (void)cudaFree(ids_device.ptr);
  if (trace_staging.ptr) (void)cudaFreeHost(trace_staging.ptr);
  if (ids_staging.ptr) (void)cudaFreeHost(ids_staging.ptr);
  (void)cudaEventDestroy(ids_copied);
  (void)cudaStreamDestroy(stream);
  (void)cudaGetLastError();
}

void apr_device::select() const {
  check_cuda(cudaSetDevice(ordinal), "cudaSetDevice");
}

void* apr_device::scratch(apr_cuda::GrowBuffer& b, uint64_t nbytes, const char* what) {
  if (b.size >= nbytes) return b.ptr;
  if (b.ptr) check_cuda(cudaFree(b.ptr), what);  // cudaFree waits for work that may use it
  b = {};
  check_cuda(cudaMalloc(&b.ptr, nbytes), what);
  b.size = nbytes;
  return b.ptr;
}

void* apr_device::staging(apr_cuda::GrowBuffer& b, uint64_t nbytes, const char* what) {
  if (b.size >= nbytes) return b.ptr;
  if (b.ptr) check_cuda(cudaFreeHost(b.ptr), what);
  b = {};
  check_cuda(cudaMallocHost(&b.ptr, nbytes), what);
  b.size = nbytes;
  return b.ptr;
}

std::unique_ptr<apr_buffer> apr_device::buffer_alloc(uint64_t nbytes) {
  select();
  // Owned before the allocation, so no path leaks it; cudaMalloc returns 256-byte aligned memory,
  // and a zero-byte request still gets a real pointer.
  auto b = std::make_unique<apr_buffer>(ordinal);
  check_cuda(cudaMalloc(&b->ptr, std::max<uint64_t>(nbytes, 1)),
             "allocating a device buffer of " + num(nbytes) + " bytes");
  return b;
}

void apr_device::buffer_write(apr_buffer& b, uint64_t offset, const void* src, uint64_t nbytes) {
  select();
  if (nbytes == 0) return;
  // Ordered after earlier kernels on the stream; the wait keeps the promise that src is read
  // before the call returns even if the host's memory happens to be pinned.
  check_cuda(cudaMemcpyAsync(static_cast<char*>(b.ptr) + offset, src, nbytes,
                             cudaMemcpyHostToDevice, stream),
             "copying to the device");
  check_cuda(cudaStreamSynchronize(stream), "waiting for the copy to the device");
}

void apr_device::buffer_read(const apr_buffer& b, uint64_t offset, void* dst, uint64_t nbytes) {
  select();
  if (nbytes > 0)
    check_cuda(cudaMemcpyAsync(dst, static_cast<const char*>(b.ptr) + offset, nbytes,
                               cudaMemcpyDeviceToHost, stream),
               "copying from the device");
  check_cuda(cudaStreamSynchronize(stream), "waiting for the copy from the device");
}

void apr_device::synchronize() {
  select();
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

std::unique_ptr<apr_weight> apr_device::weight_create(const apr_sdk::WeightSpec& spec) {
  const std::string where = "tensor '" + spec.name + "'";
  // The kit checked the bytes against its block geometry and the kernels step through rows with
  // their own (block_decode.cuh); a mismatch would read the wrong bytes, so refuse it loudly.
  const apr_type id = spec.type.id;
  if (apr_cuda::weight_block_elems(id) != spec.type.block_elems ||
      apr_cuda::weight_block_bytes(id) != spec.type.block_bytes)
    apr_sdk::fail(APR_ERR_INTERNAL, where + ": the kit's " + std::string(spec.type.name) +
                                        " block geometry differs from the cuda decoder's");
  const uint64_t total = spec.n_rows * spec.row_bytes;  // the kit checked it fits
  select();
  auto w = std::make_unique<apr_weight>(ordinal);
  void* ptr = nullptr;
  check_cuda(cudaMalloc(&ptr, total), "allocating " + num(total) + " bytes for " + where);
  w->data = static_cast<uint8_t*>(ptr);
  // Uploaded once in its GGUF blocks; the wait lets the host drop non-persistent data at once.
  check_cuda(cudaMemcpyAsync(w->data, spec.data, total, cudaMemcpyHostToDevice, stream),
             "uploading " + where);
  check_cuda(cudaStreamSynchronize(stream), "uploading " + where);
  return w;
}

void apr_device::emit_view(apr_stage stage, uint32_t layer, const float* src, uint64_t n_rows,
                           uint64_t n_cols, uint64_t stride, uint32_t ndim, const uint64_t* shape) {
  constexpr uint64_t kF32 = sizeof(float);
  uint64_t elems = 0, nbytes = 0;
  if (__builtin_mul_overflow(n_rows, n_cols, &elems) ||
      __builtin_mul_overflow(elems, kF32, &nbytes))
    apr_sdk::invalid("a trace tensor of " + num(n_rows) + " x " + num(n_cols) +
                     " overflows 64 bits");
  void* host = trace_staging.ptr;
  if (nbytes > 0) {
    host = staging(trace_staging, nbytes, "allocating trace staging");
    // A packed view is one plain copy; 2-D copies are kept for strided views, whose pitch is
    // bounded by the device's maximum pitch.
    const cudaError_t err =
        stride == n_cols || n_rows == 1
            ? cudaMemcpyAsync(host, src, nbytes, cudaMemcpyDeviceToHost, stream)
            : cudaMemcpy2DAsync(host, n_cols * kF32, src, stride * kF32, n_cols * kF32, n_rows,
                                cudaMemcpyDeviceToHost, stream);
    check_cuda(err, "copying a trace tensor");
  }
  check_cuda(cudaStreamSynchronize(stream), "waiting for a trace tensor");
  trace.emit(stage, layer, static_cast<const float*>(host), ndim, shape);
}
