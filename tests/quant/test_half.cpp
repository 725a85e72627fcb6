// SPDX-License-Identifier: MIT
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "conformance/ref_dequant.hpp"
#include "quant/quant.hpp"

using namespace apr::quant;

TEST_CASE("fp16_to_f32 matches the reference on all 65536 patterns", "[quant][half]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double ref = apr_test::ref_half(uint16_t(h));
    const float got = fp16_to_f32(uint16_t(h));
    if (std::isnan(ref)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(double(got) == ref);
      REQUIRE(std::signbit(got) == bool(h & 0x8000));  // keeps -0
    }
  }
}

TEST_CASE("f32_to_fp16 inverts fp16_to_f32 exactly", "[quant][half]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      const uint16_t back = f32_to_fp16(f);
      REQUIRE((back & 0x7c00) == 0x7c00);
      REQUIRE((back & 0x3ff) != 0);
    } else {
      REQUIRE(f32_to_fp16(f) == h);
    }
  }
}

// The nearest fp16 to x > 0 found by brute force over the positive patterns (ties to even).
static uint16_t nearest_half_brute(double x) {
  uint16_t best = 0;
  double best_err = INFINITY;
  for (uint32_t h = 0; h <= 0x7bff; ++h) {
    const double err = std::fabs(apr_test::ref_half(uint16_t(h)) - x);
    if (err < best_err || (err == best_err && (h & 1) == 0)) {
      best = uint16_t(h);
      best_err = err;
    }
  }
  return best;
}

TEST_CASE("f32_to_fp16 rounds to nearest even", "[quant][half]") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300; ++i) {
    // Magnitudes from deep subnormal to near the top of the range.
    const float x = float(std::ldexp(1.0 + double(rng() % 1000000) / 1e6, int(rng() % 41) - 26));
    INFO(x);
    REQUIRE(f32_to_fp16(x) == nearest_half_brute(x));
    REQUIRE(f32_to_fp16(-x) == (nearest_half_brute(x) | 0x8000));
  }
  // Exact ties between neighbours go to the even pattern.
  CHECK(f32_to_fp16(float(std::ldexp(1.0, -25))) == 0x0000);         // half the smallest subnormal
  CHECK(f32_to_fp16(float(std::ldexp(3.0, -25))) == 0x0002);         // 1.5 units -> 2
  CHECK(f32_to_fp16(1.0f + float(std::ldexp(1.0, -11))) == 0x3c00);  // tie below -> even
  CHECK(f32_to_fp16(1.0f + float(std::ldexp(3.0, -11))) == 0x3c02);
  CHECK(f32_to_fp16(65504.0f) == 0x7bff);
  CHECK(f32_to_fp16(65519.0f) == 0x7bff);
  CHECK(f32_to_fp16(65520.0f) == 0x7c00);
  CHECK(f32_to_fp16(1e30f) == 0x7c00);
  CHECK(f32_to_fp16(-INFINITY) == 0xfc00);
}

TEST_CASE("bf16 conversion", "[quant][half]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(uint16_t(h));
    REQUIRE(std::bit_cast<uint32_t>(f) == h << 16);
    if (!std::isnan(f)) REQUIRE(f32_to_bf16(f) == h);
  }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100000; ++i) {
    const uint32_t bits = uint32_t(rng()) & 0x7f7fffff;  // finite, positive
    const float f = std::bit_cast<float>(bits);
    const uint16_t h = f32_to_bf16(f);
    const double err = std::fabs(double(bf16_to_f32(h)) - double(f));
    const double err_down = std::fabs(double(bf16_to_f32(uint16_t(bits >> 16))) - double(f));
    const double err_up = std::fabs(double(bf16_to_f32(uint16_t((bits >> 16) + 1))) - double(f));
    REQUIRE(err <= err_down);
    REQUIRE(err <= err_up);
    if (err_down == err_up) REQUIRE((h & 1) == 0);
  }
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
}
