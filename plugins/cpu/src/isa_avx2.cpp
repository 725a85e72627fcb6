// SPDX-License-Identifier: MIT
// AVX2 + FMA + F16C kernels, used only after a run-time check of CPU and OS support.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "isa_kernels.hpp"
#include "weight_formats.hpp"

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
// Vector types only cross calls between functions of this file, all compiled for one target.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC target("avx2,fma,f16c")
#define APR_ISA_NS avx2
#define APR_ISA_LEVEL 1
#define APR_ISA_NAME "avx2"
#include "isa_impl.hpp"
#pragma GCC diagnostic pop
#pragma GCC pop_options

#else
namespace apr_cpu::avx2 {
const IsaKernels* kernels() {
  return nullptr;
}
}  // namespace apr_cpu::avx2
#endif
