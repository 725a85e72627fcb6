// SPDX-License-Identifier: MIT
// Host pointers into the kernel arguments' views. The kit (apr/kit/kernel_checks.hpp) has already
// checked that every view lies inside its buffer and that the buffer is this device's own.
#pragma once

#include <apr/plugin.h>

#include <cstdint>

#include "device.hpp"

namespace apr_cpu {

inline float* f32_at(const apr_buffer* buffer, uint64_t offset) {
  return reinterpret_cast<float*>(buffer->data + offset);
}

}  // namespace apr_cpu
