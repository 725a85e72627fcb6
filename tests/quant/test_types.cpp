// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "conformance/ref_dequant.hpp"
#include "quant/quant.hpp"

using namespace apr::quant;

TEST_CASE("type table: the 13 supported types match the reference geometry", "[quant]") {
  int supported = 0;
  for (uint32_t id = 0; id < 64; ++id) {
    if (is_supported(id)) ++supported;
  }
  CHECK(supported == 13);
  for (uint32_t type : apr_test::ref_types()) {
    INFO(apr_test::ref_type_name(type));
    const TypeInfo* info = type_info(type);
    REQUIRE(info != nullptr);
    CHECK(info->id == type);
    CHECK(info->supported);
    CHECK(std::string(info->name) == apr_test::ref_type_name(type));
    CHECK(info->block_size == apr_test::block_size(type));
    CHECK(info->type_size == apr_test::type_size(type));
  }
}

TEST_CASE("type table: removed and unknown ids have no entry", "[quant]") {
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 43u, 99u, 0xffffffffu}) {
    INFO(id);
    CHECK(type_info(id) == nullptr);
    CHECK_FALSE(is_supported(id));
    CHECK(type_name(id) == "type " + std::to_string(id));
  }
}

TEST_CASE("type table: unsupported but known types", "[quant]") {
  // Values from GGUF-FACTS §2.1 (ggml_type_size, not gguf-py's stale Q8_1 size).
  struct Expected {
    uint32_t id;
    const char* name;
    uint32_t blk, bytes;
  };
  for (const Expected& e :
       {Expected{9, "Q8_1", 32, 36}, Expected{15, "Q8_K", 256, 292}, Expected{20, "IQ4_NL", 32, 18},
        Expected{23, "IQ4_XS", 256, 136}, Expected{28, "F64", 1, 8}, Expected{29, "IQ1_M", 256, 56},
        Expected{35, "TQ2_0", 256, 66}, Expected{39, "MXFP4", 32, 17},
        Expected{40, "NVFP4", 64, 36}, Expected{42, "Q2_0", 64, 18}}) {
    INFO(e.name);
    const TypeInfo* info = type_info(e.id);
    REQUIRE(info != nullptr);
    CHECK(type_name(e.id) == e.name);
    CHECK(info->block_size == e.blk);
    CHECK(info->type_size == e.bytes);
    CHECK_FALSE(info->supported);
  }
}

TEST_CASE("row_bytes", "[quant]") {
  CHECK(row_bytes(kF32, 896) == 3584);
  CHECK(row_bytes(kQ8_0, 896) == 28 * 34);
  CHECK(row_bytes(kQ4_K, 4864) == 19 * 144);
  CHECK(row_bytes(kQ6_K, 0) == 0);
  CHECK_THROWS_AS(row_bytes(kQ4_K, 896), apr::Error);
  CHECK_THROWS_AS(row_bytes(4, 32), apr::Error);
  CHECK_THROWS_AS(row_bytes(99, 32), apr::Error);
  CHECK_THROWS_AS(row_bytes(kF32, uint64_t(1) << 62), apr::Error);
}
