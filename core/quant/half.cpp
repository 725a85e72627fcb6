// SPDX-License-Identifier: MIT
#include "quant/half.hpp"

#include <bit>
#include <cmath>

namespace apr::quant {

float fp16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t fraction = h & 0x3ff;
  if (exponent == 0) {
    // Zero or subnormal: fraction * 2^-24 is exact in f32.
    const float magnitude = std::ldexp(float(fraction), -24);
    return std::bit_cast<float>(std::bit_cast<uint32_t>(magnitude) | sign);
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | fraction << 13);
  return std::bit_cast<float>(sign | (exponent + 112) << 23 | fraction << 13);
}

uint16_t f32_to_fp16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7fffffff;
  if (magnitude > 0x7f800000) {
    // NaN: keep the top payload bits and force the quiet bit so the result stays a NaN.
    return uint16_t(sign | 0x7e00 | ((magnitude >> 13) & 0x3ff));
  }
  if (magnitude >= 0x47800000) return uint16_t(sign | 0x7c00);  // >= 65536 or inf
  if (magnitude < 0x38800000) {
    // Below the smallest normal 2^-14: scale to units of 2^-24 and round to nearest even.
    const float units = std::nearbyint(std::bit_cast<float>(magnitude) * 16777216.0f);
    return uint16_t(sign | uint16_t(units));
  }
  // Normal: rebias the exponent, then round the 13 dropped fraction bits to nearest even. A carry
  // out of the fraction correctly bumps the exponent (up to infinity for [65520, 65536)).
  const uint32_t rebiased = magnitude - (112u << 23);
  const uint32_t rounded = rebiased + 0xfff + ((rebiased >> 13) & 1);
  return uint16_t(sign | (rounded >> 13));
}

float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(uint32_t(h) << 16);
}

uint16_t f32_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffff) > 0x7f800000) return uint16_t((bits >> 16) | 0x40);  // quiet NaN
  return uint16_t((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

}  // namespace apr::quant
