// SPDX-License-Identifier: MIT
// Validation of kernel arguments: every pointer, size and byte range is checked before any
// memory is touched, and failures say which argument is wrong.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <string>

#include "device.hpp"
#include "status.hpp"

namespace apr_cpu {

// Argument structs: NULL or smaller than their ABI 1.0 size (plugin.h's *_SIZE_V1_0, never
// sizeof) is refused; members appended later are read only after APR_STRUCT_HAS.
template <typename Args>
const Args& checked_args(const apr_device* device, const Args* args, const char* struct_name) {
  if (!device) invalid("device is NULL");
  return apr_sdk::checked_args(args, struct_name);
}

// Checks that n_rows rows of n_cols f32, row_stride elements apart, starting at byte offset lie
// inside the buffer, and returns a pointer to the first element.
float* checked_view(const apr_buffer* buffer, uint64_t offset, uint64_t n_rows, uint64_t n_cols,
                    uint64_t row_stride, const char* what);

inline float* checked_span(const apr_buffer* buffer, uint64_t offset, uint64_t n,
                           const char* what) {
  return checked_view(buffer, offset, n == 0 ? 0 : 1, n, n, what);
}

// Whether two views of the same buffer share any byte (a coarse test on their byte extents).
bool views_overlap(const apr_buffer* a, uint64_t a_offset, uint64_t a_bytes, const apr_buffer* b,
                   uint64_t b_offset, uint64_t b_bytes);

// The byte extent of a strided view that checked_view accepted.
inline uint64_t view_bytes(uint64_t n_rows, uint64_t n_cols, uint64_t row_stride) {
  return n_rows == 0 ? 0 : ((n_rows - 1) * row_stride + n_cols) * sizeof(float);
}

}  // namespace apr_cpu
