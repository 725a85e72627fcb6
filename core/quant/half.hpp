// SPDX-License-Identifier: MIT
// IEEE binary16 and bfloat16 conversion, exact in the widening direction and round-to-nearest-even
// in the narrowing one; subnormals, infinities and NaNs are preserved.
#pragma once

#include <cstdint>

namespace apr::quant {

float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace apr::quant
