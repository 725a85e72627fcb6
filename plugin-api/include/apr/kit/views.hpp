// SPDX-License-Identifier: MIT
// Byte extents of f32 views (rows of n_cols placed row_stride apart) with overflow checks, and
// the overlap tests the argument rules need.
#pragma once

#include <cstdint>
#include <string>

#include "failure.hpp"

namespace apr_sdk {

// Bytes spanned by n_rows rows of n_cols f32 placed row_stride elements apart; refuses a stride
// shorter than a row (for more than one row) and sizes that overflow.
inline uint64_t view_bytes(uint64_t n_rows, uint64_t n_cols, uint64_t row_stride,
                           const char* what) {
  if (n_rows == 0 || n_cols == 0) return 0;
  if (n_rows > 1 && row_stride < n_cols)
    invalid(std::string(what) + ": row stride " + num(row_stride) + " is shorter than the row " +
            num(n_cols));
  if (n_rows == 1) row_stride = n_cols;
  uint64_t elems, bytes;
  if (__builtin_mul_overflow(n_rows - 1, row_stride, &elems) ||
      __builtin_add_overflow(elems, n_cols, &elems) || __builtin_mul_overflow(elems, 4, &bytes))
    invalid(std::string(what) + ": size overflows 64 bits");
  return bytes;
}

// offset is a multiple of 4 and [offset, offset + nbytes) lies inside a buffer of buffer_size.
inline void check_range(uint64_t buffer_size, uint64_t offset, uint64_t nbytes, const char* what) {
  if (offset % 4 != 0)
    invalid(std::string(what) + ": offset " + num(offset) + " is not a multiple of 4");
  uint64_t end;
  if (__builtin_add_overflow(offset, nbytes, &end) || end > buffer_size)
    invalid(std::string(what) + ": bytes [" + num(offset) + ", +" + num(nbytes) +
            ") lie outside the buffer of " + num(buffer_size) + " bytes");
}

// A checked byte extent of one buffer.
template <typename Buffer>
struct Extent {
  const Buffer* buffer = nullptr;
  uint64_t offset = 0;
  uint64_t bytes = 0;

  bool overlaps(const Extent& o) const {
    return buffer == o.buffer && bytes != 0 && o.bytes != 0 && offset < o.offset + o.bytes &&
           o.offset < offset + bytes;
  }
  bool same(const Extent& o) const { return buffer == o.buffer && offset == o.offset; }
};

}  // namespace apr_sdk
