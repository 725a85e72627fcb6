// SPDX-License-Identifier: MIT
// AVX-512 (F, BW, VL, DQ) kernels plus the VNNI integer kernels on repacked weights, used only
// after a run-time check of CPU and OS support.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "isa_kernels.hpp"
#include "weight_formats.hpp"

#if defined(__x86_64__)
// GCC 12 reports the deliberately undefined pass-through operand inside many unmasked AVX-512
// intrinsics as uninitialised (GCC PR 105593); the warning sits in <immintrin.h> itself.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#pragma GCC push_options
// Vector types only cross calls between functions of this file, all compiled for one target.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
#define APR_ISA_NS avx512vnni
#define APR_ISA_LEVEL 2
#define APR_ISA_NAME "avx512vnni"
#define APR_ISA_VNNI 1
#include "isa_impl.hpp"
#pragma GCC diagnostic pop
#pragma GCC pop_options

#else
namespace apr_cpu::avx512vnni {
const IsaKernels* kernels() {
  return nullptr;
}
}  // namespace apr_cpu::avx512vnni
#endif
