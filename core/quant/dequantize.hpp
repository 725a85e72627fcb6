// SPDX-License-Identifier: MIT
// Reference dequantization to f32, bit-identical with ggml's dequantize_row_* functions.
#pragma once

#include <cstdint>

namespace apr::quant {

// Decodes n elements (a whole number of blocks) of a row of `type` starting at src. Throws
// apr::Error for a type apr does not decode or an n that is not a multiple of the block size.
void dequantize_row(uint32_t type, const void* src, float* dst, uint64_t n);

}  // namespace apr::quant
