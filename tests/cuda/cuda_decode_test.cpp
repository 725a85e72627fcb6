// SPDX-License-Identifier: MIT
// The CUDA kernels' block decoder (plugins/cuda/src/block_decode.cuh), compiled here as plain
// C++, against the float64 reference decoder: every element of random blocks of all 13 types must
// decode to exactly the reference value rounded to f32 (GGUF-FACTS §2.5: the formulas are exact or
// round once). Runs without a GPU, so CI checks the bit layouts the GPU kernels rely on.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>

#include "block_decode.cuh"
#include "conformance/ref_dequant.hpp"

namespace {

void decode(uint32_t type, const uint8_t* row, uint64_t n_cols, uint64_t k0, float* out) {
  using namespace apr_cuda;
  switch (type) {
    case APR_TYPE_F32:
      return decode_chunk<APR_TYPE_F32>(row, n_cols, k0, out);
    case APR_TYPE_F16:
      return decode_chunk<APR_TYPE_F16>(row, n_cols, k0, out);
    case APR_TYPE_BF16:
      return decode_chunk<APR_TYPE_BF16>(row, n_cols, k0, out);
    case APR_TYPE_Q4_0:
      return decode_chunk<APR_TYPE_Q4_0>(row, n_cols, k0, out);
    case APR_TYPE_Q4_1:
      return decode_chunk<APR_TYPE_Q4_1>(row, n_cols, k0, out);
    case APR_TYPE_Q5_0:
      return decode_chunk<APR_TYPE_Q5_0>(row, n_cols, k0, out);
    case APR_TYPE_Q5_1:
      return decode_chunk<APR_TYPE_Q5_1>(row, n_cols, k0, out);
    case APR_TYPE_Q8_0:
      return decode_chunk<APR_TYPE_Q8_0>(row, n_cols, k0, out);
    case APR_TYPE_Q2_K:
      return decode_chunk<APR_TYPE_Q2_K>(row, n_cols, k0, out);
    case APR_TYPE_Q3_K:
      return decode_chunk<APR_TYPE_Q3_K>(row, n_cols, k0, out);
    case APR_TYPE_Q4_K:
      return decode_chunk<APR_TYPE_Q4_K>(row, n_cols, k0, out);
    case APR_TYPE_Q5_K:
      return decode_chunk<APR_TYPE_Q5_K>(row, n_cols, k0, out);
    case APR_TYPE_Q6_K:
      return decode_chunk<APR_TYPE_Q6_K>(row, n_cols, k0, out);
  }
  FAIL("type " << type << " has no decoder");
}

// Elements and bytes per block as the decoder's BlockTraits declare them.
std::pair<uint64_t, uint64_t> traits(uint32_t type) {
  using apr_cuda::BlockTraits;
#define APR_TRAITS_CASE(T)                           \
  case T:                                            \
    return {                                         \
      BlockTraits<T>::kElems, BlockTraits<T>::kBytes \
    }
  switch (type) {
    APR_TRAITS_CASE(APR_TYPE_F32);
    APR_TRAITS_CASE(APR_TYPE_F16);
    APR_TRAITS_CASE(APR_TYPE_BF16);
    APR_TRAITS_CASE(APR_TYPE_Q4_0);
    APR_TRAITS_CASE(APR_TYPE_Q4_1);
    APR_TRAITS_CASE(APR_TYPE_Q5_0);
    APR_TRAITS_CASE(APR_TYPE_Q5_1);
    APR_TRAITS_CASE(APR_TYPE_Q8_0);
    APR_TRAITS_CASE(APR_TYPE_Q2_K);
    APR_TRAITS_CASE(APR_TYPE_Q3_K);
    APR_TRAITS_CASE(APR_TYPE_Q4_K);
    APR_TRAITS_CASE(APR_TYPE_Q5_K);
    APR_TRAITS_CASE(APR_TYPE_Q6_K);
  }
#undef APR_TRAITS_CASE
  return {0, 0};
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace

TEST_CASE("cuda block decoder is bit-exact against the float64 reference for all 13 types") {
  std::mt19937_64 rng(42);
  for (uint32_t type : apr_test::ref_types()) {
    INFO(apr_test::ref_type_name(type));
    const bool dense = apr_test::block_size(type) == 1;
    // Dense rows end in a partial 16-element chunk; quantized rows hold several blocks.
    const uint64_t n_cols = dense ? 37 : 4 * apr_test::block_size(type), n_rows = 64;
    const std::vector<uint8_t> data = apr_test::random_blocks(type, n_rows * n_cols, rng);
    const uint64_t row_bytes = data.size() / n_rows;
    REQUIRE(traits(type).first == apr_test::block_size(type));
    REQUIRE(traits(type).second == apr_test::type_size(type));
    size_t nonzero = 0;
    for (uint64_t r = 0; r < n_rows; ++r) {
      const uint8_t* row = data.data() + r * row_bytes;
      for (uint64_t k0 = 0; k0 < n_cols; k0 += apr_cuda::kChunk) {
        float got[apr_cuda::kChunk];
        std::fill(std::begin(got), std::end(got), 1234.5f);
        decode(type, row, n_cols, k0, got);
        for (uint32_t i = 0; i < apr_cuda::kChunk; ++i) {
          INFO("row " << r << " element " << k0 + i);
          if (k0 + i >= n_cols) {
            REQUIRE(got[i] == 0.0f);
            continue;
          }
          const float ref = static_cast<float>(apr_test::ref_element(type, row, k0 + i));
          REQUIRE(bits(got[i]) == bits(ref));
          nonzero += ref != 0.0f;
        }
      }
    }
    CHECK(nonzero > n_rows * n_cols / 2);  // the data really exercised the decoder
  }
}

TEST_CASE("cuda fp16 conversion is exact for all 65536 bit patterns") {
  for (uint32_t h = 0; h < 65536; ++h) {
    INFO("fp16 bits " << h);
    const float got = apr_cuda::half_bits_to_float(static_cast<uint16_t>(h));
    const double ref = apr_test::ref_half(static_cast<uint16_t>(h));
    if (std::isnan(ref)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(bits(got) == bits(static_cast<float>(ref)));
    }
  }
}
