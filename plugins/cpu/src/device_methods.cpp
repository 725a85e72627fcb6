// SPDX-License-Identifier: MIT
// The device's methods: buffers in host memory, weights referenced in place or copied, then
// repacked for the integer kernels, and the kernels' entry points. The kit has checked every
// argument.
#include <cstdlib>
#include <cstring>
#include <memory>

#include "device.hpp"
#include "status.hpp"

std::unique_ptr<apr_buffer> apr_device::buffer_alloc(uint64_t nbytes) {
  using apr_cpu::num;
  if (nbytes > (uint64_t{1} << 48))
    apr_cpu::fail(APR_ERR_OUT_OF_MEMORY, num(nbytes) + " bytes is too large");
  // Rounded up to the alignment (and never 0) so aligned_alloc's size rule holds; zeroed so a
  // buffer never shows an earlier owner's data.
  const uint64_t rounded = (nbytes + 255) / 256 * 256 + (nbytes == 0 ? 256 : 0);
  void* p = std::aligned_alloc(256, rounded);
  if (!p) apr_cpu::fail(APR_ERR_OUT_OF_MEMORY, "cannot allocate " + num(nbytes) + " bytes");
  std::memset(p, 0, rounded);
  return std::make_unique<apr_buffer>(static_cast<uint8_t*>(p));
}

void apr_device::buffer_write(apr_buffer& b, uint64_t offset, const void* src, uint64_t nbytes) {
  if (nbytes) std::memcpy(b.data + offset, src, nbytes);
}

void apr_device::buffer_read(const apr_buffer& b, uint64_t offset, void* dst, uint64_t nbytes) {
  if (nbytes) std::memcpy(dst, b.data + offset, nbytes);
}

std::unique_ptr<apr_weight> apr_device::weight_create(const apr_sdk::WeightSpec& spec) {
  auto w = std::make_unique<apr_weight>();
  const uint64_t total = spec.n_rows * spec.row_bytes;
  // F32 rows are read as floats, so they need 4-byte alignment; otherwise reference in place.
  const bool aligned = reinterpret_cast<uintptr_t>(spec.data) % 4 == 0;
  if (spec.persistent && aligned) {
    w->data = static_cast<const uint8_t*>(spec.data);
  } else {
    w->owned.reset(new uint8_t[total]);
    std::memcpy(w->owned.get(), spec.data, total);
    w->data = w->owned.get();
  }
  // Repacked for the integer kernels unless every product is to stay in f32 (APR_CPU_ACT=f32,
  // read here and at every matmul: weights created under f32 keep the f32 path).
  const char* act = std::getenv("APR_CPU_ACT");
  const bool f32_only = act && std::strcmp(act, "f32") == 0;
  if (kernels.packed_gemm_q16 && apr_cpu::packable(spec.type.id) && !f32_only)
    w->packed =
        apr_cpu::pack_weight(spec.type.id, w->data, spec.n_rows, spec.n_cols, spec.row_bytes, pool);
  return w;
}

#define APR_CPU_KERNEL_METHOD(fn, Args)   \
  void apr_device::fn(const Args& args) { \
    apr_cpu::run_##fn(*this, args);       \
  }
APR_SDK_KERNELS(APR_CPU_KERNEL_METHOD)
#undef APR_CPU_KERNEL_METHOD
