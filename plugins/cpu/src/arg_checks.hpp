// Validation of kernel arguments: every pointer, size and byte range is checked before any
// memory is touched, and failures say which argument is wrong.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <string>

#include "device.hpp"
#include "status.hpp"

namespace apr_cpu {

// The size each argument struct had in ABI 1.0: a host of any 1.x sends at least this much.
// Members appended later are read only after APR_STRUCT_HAS.
template <typename Args>
constexpr size_t abi_1_0_size() {
  return sizeof(Args);
}
template <>
constexpr size_t abi_1_0_size<apr_rope_args>() {
  return APR_ROPE_ARGS_SIZE_V1_0;
}

template <typename Args>
const Args& checked_args(const apr_device* device, const Args* args, const char* struct_name) {
  if (!device) invalid("device is NULL");
  if (!args) invalid(std::string(struct_name) + " is NULL");
  if (args->struct_size < abi_1_0_size<Args>())
    invalid(std::string(struct_name) + ".struct_size " + num(args->struct_size) +
            " is smaller than the ABI 1.0 size " + num(abi_1_0_size<Args>()));
  return *args;
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
