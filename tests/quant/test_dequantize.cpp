// SPDX-License-Identifier: MIT
// dequantize_row against the independent float64 decoder of core/conformance/ref_dequant.hpp.
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "common/error.hpp"
#include "conformance/ref_dequant.hpp"
#include "quant/quant.hpp"

using namespace apr::quant;

namespace {

// Types whose every element is a product of exact factors: the result must equal the reference.
bool is_exact_type(uint32_t type) {
  switch (type) {
    case kF32:
    case kF16:
    case kBF16:
    case kQ4_0:
    case kQ5_0:
    case kQ8_0:
    case kQ3_K:
    case kQ6_K:
      return true;
  }
  return false;
}

}  // namespace

TEST_CASE("dequantize_row matches the float64 reference on random blocks", "[quant][dequant]") {
  std::mt19937_64 rng(12345);
  for (uint32_t type : apr_test::ref_types()) {
    SECTION(apr_test::ref_type_name(type)) {
      const uint64_t blk = apr_test::block_size(type);
      const uint64_t n = blk == 1 ? 4096 : 64 * blk;
      std::vector<float> out(n);
      int nonzero = 0;
      for (int round = 0; round < 8; ++round) {
        const std::vector<uint8_t> raw = apr_test::random_blocks(type, n, rng);
        dequantize_row(type, raw.data(), out.data(), n);
        for (uint64_t e = 0; e < n; ++e) {
          const double ref = apr_test::ref_element(type, raw.data(), e);
          const double got = out[e];
          if (ref != 0) ++nonzero;
          if (is_exact_type(type)) {
            if (got != ref) FAIL_CHECK("element " << e << ": got " << got << ", want " << ref);
            REQUIRE(got == ref);
          } else {
            // One rounding of the final +m / -dmin*m: within 1 ulp relative of the f64 value
            // (2^-23 |ref|), and, as GGUF-FACTS §2.5 states, equal to that value rounded once.
            INFO("element " << e << ": got " << got << ", want " << ref);
            REQUIRE(std::fabs(got - ref) <= std::ldexp(std::fabs(ref), -23));
            REQUIRE(out[e] == float(ref));
          }
        }
      }
      // Random data must produce non-trivial values, or the comparison above proves nothing.
      CHECK(nonzero > int(n) * 8 / 2);
    }
  }
}

TEST_CASE("dequantize_row on a single block writes exactly one block", "[quant][dequant]") {
  std::mt19937_64 rng(99);
  for (uint32_t type : apr_test::ref_types()) {
    INFO(apr_test::ref_type_name(type));
    const uint64_t blk = apr_test::block_size(type);
    const std::vector<uint8_t> raw = apr_test::random_blocks(type, blk, rng);
    std::vector<float> out(blk + 1, 12345.0f);
    dequantize_row(type, raw.data(), out.data(), blk);
    CHECK(out[blk] == 12345.0f);
    CHECK(double(out[blk - 1]) == Approx(apr_test::ref_element(type, raw.data(), blk - 1)));
  }
}

TEST_CASE("dequantize_row F16 keeps subnormals, infinities and NaN", "[quant][dequant]") {
  const std::vector<uint16_t> halves = {0x0001, 0x03ff, 0x8001, 0x0400, 0x7bff, 0xfbff, 0x7c00,
                                        0xfc00, 0x7e00, 0x7c01, 0xffff, 0x8000, 0x0000, 0x3555};
  std::vector<uint8_t> raw;
  for (uint16_t h : halves) {
    raw.push_back(uint8_t(h));
    raw.push_back(uint8_t(h >> 8));
  }
  std::vector<float> out(halves.size());
  dequantize_row(kF16, raw.data(), out.data(), halves.size());
  for (size_t i = 0; i < halves.size(); ++i) {
    INFO(std::hex << halves[i]);
    const double ref = apr_test::ref_element(kF16, raw.data(), i);
    if (std::isnan(ref)) {
      CHECK(std::isnan(out[i]));
    } else {
      CHECK(double(out[i]) == ref);
      CHECK(std::signbit(out[i]) == std::signbit(ref));
    }
  }
  CHECK(out[0] == float(std::ldexp(1.0, -24)));
  CHECK(std::isinf(out[6]));
  CHECK(out[6] > 0);
  CHECK(out[7] < 0);
}

TEST_CASE("dequantize_row rejects unsupported types and partial blocks", "[quant][dequant]") {
  std::vector<uint8_t> raw(1024, 0x11);
  std::vector<float> out(512);
  CHECK_THROWS_AS(dequantize_row(15, raw.data(), out.data(), 256), apr::Error);  // Q8_K
  CHECK_THROWS_AS(dequantize_row(4, raw.data(), out.data(), 32), apr::Error);
  CHECK_THROWS_AS(dequantize_row(99, raw.data(), out.data(), 32), apr::Error);
  CHECK_THROWS_AS(dequantize_row(kQ4_K, raw.data(), out.data(), 128), apr::Error);
  CHECK_THROWS_AS(dequantize_row(kQ8_0, raw.data(), out.data(), 33), apr::Error);
}
