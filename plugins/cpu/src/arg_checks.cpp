// SPDX-License-Identifier: MIT
#include "arg_checks.hpp"

namespace apr_cpu {

namespace {
bool mul_overflows(uint64_t a, uint64_t b, uint64_t& out) {
  return __builtin_mul_overflow(a, b, &out);
}
}  // namespace

float* checked_view(const apr_buffer* buffer, uint64_t offset, uint64_t n_rows, uint64_t n_cols,
                    uint64_t row_stride, const char* what) {
  if (!buffer) invalid(std::string(what) + " buffer is NULL");
  if (offset % 4 != 0)
    invalid(std::string(what) + " offset " + num(offset) + " is not a multiple of 4");
  if (n_rows > 1 && row_stride < n_cols)
    invalid(std::string(what) + " row stride " + num(row_stride) +
            " is smaller than the row length " + num(n_cols));
  uint64_t elems = 0, span = 0;
  bool overflow = false;
  if (n_rows > 0 && n_cols > 0) {
    overflow = mul_overflows(n_rows - 1, row_stride, elems) ||
               __builtin_add_overflow(elems, n_cols, &elems) || mul_overflows(elems, 4, span);
  }
  uint64_t end = 0;
  if (overflow || __builtin_add_overflow(offset, span, &end) || end > buffer->size)
    invalid(std::string(what) + " view [" + num(offset) + ", +" +
            (overflow ? std::string("overflow") : num(span)) +
            " bytes) lies outside its buffer of " + num(buffer->size) + " bytes");
  return reinterpret_cast<float*>(buffer->data + offset);
}

bool views_overlap(const apr_buffer* a, uint64_t a_offset, uint64_t a_bytes, const apr_buffer* b,
                   uint64_t b_offset, uint64_t b_bytes) {
  if (a != b || a_bytes == 0 || b_bytes == 0) return false;
  return a_offset < b_offset + b_bytes && b_offset < a_offset + a_bytes;
}

}  // namespace apr_cpu
