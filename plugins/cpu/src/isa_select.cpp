// SPDX-License-Identifier: MIT
#include <cstring>

#include "isa_kernels.hpp"

namespace apr_cpu {

namespace {
bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}
bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && cpu_has_avx2();
#else
  return false;
#endif
}
bool cpu_has_avx512vnni() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512vnni") && cpu_has_avx512();
#else
  return false;
#endif
}
}  // namespace

const IsaKernels& select_isa_kernels(const char* requested) {
  int cap = 3;
  if (requested && *requested) {
    if (std::strcmp(requested, "scalar") == 0) cap = 0;
    if (std::strcmp(requested, "avx2") == 0) cap = 1;
    if (std::strcmp(requested, "avx512") == 0) cap = 2;
  }
  if (cap >= 3 && cpu_has_avx512vnni() && avx512vnni::kernels()) return *avx512vnni::kernels();
  if (cap >= 2 && cpu_has_avx512() && avx512::kernels()) return *avx512::kernels();
  if (cap >= 1 && cpu_has_avx2() && avx2::kernels()) return *avx2::kernels();
  return scalar::kernels;
}

}  // namespace apr_cpu
