// SPDX-License-Identifier: MIT
// Test-only fault injection (the cpu-fault plugin): APR_CPU_FAULT="<layer>:<stage>[:<magnitude>]"
// perturbs one stage's tensor in place so that it and every later stage diverge. In the normal
// plugin the hooks are empty inline functions.
#pragma once

#include <apr/plugin.h>

#include <cstddef>
#include <cstdint>

namespace apr_cpu::fault {

#ifdef APR_CPU_FAULT_INJECTION
// Reads APR_CPU_FAULT; throws Failure if it is malformed.
void configure_from_environment();
// Adds +m, -m, +m, ... to the n_cols elements of each row when (stage, layer) is the faulty one.
void perturb(apr_stage stage, uint32_t layer, float* data, uint64_t n_rows, uint64_t n_cols,
             uint64_t row_stride);
#else
inline void configure_from_environment() {}
inline void perturb(apr_stage, uint32_t, float*, uint64_t, uint64_t, uint64_t) {}
#endif

}  // namespace apr_cpu::fault
