// SPDX-License-Identifier: MIT
// What the device description says about the machine: the processor's name and its memory.
#pragma once

#include <cstdint>
#include <string>

namespace apr_cpu {

// /proc/cpuinfo's "model name", or "CPU".
std::string cpu_model_name();
// Physical memory in bytes, 0 when unknown.
uint64_t physical_memory_bytes();

}  // namespace apr_cpu
