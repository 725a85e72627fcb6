// SPDX-License-Identifier: MIT
// The reader on valid files written by the independent builder.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>

#include "common/error.hpp"
#include "conformance/ref_dequant.hpp"
#include "gguf/gguf_file.hpp"
#include "gguf_builder.hpp"

using namespace apr_test;
using apr::gguf::File;
using apr::gguf::ValueType;

namespace {

std::vector<uint8_t> random_bytes(size_t n, std::mt19937_64& rng) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

GgufSpec every_value_type() {
  GgufSpec s;
  s.kvs = {kv("v.u8", kU8, uint8_t(200)),
           kv("v.i8", kI8, int8_t(-100)),
           kv("v.u16", kU16, uint16_t(60000)),
           kv("v.i16", kI16, int16_t(-30000)),
           kv("v.u32", kU32, uint32_t(4000000000u)),
           kv("v.i32", kI32, int32_t(-2000000000)),
           kv("v.f32", kF32v, 1e-6f),
           kv("v.bool_true", kBool, uint8_t(1)),
           kv("v.bool_false", kBool, uint8_t(0)),
           kv_string("v.string", "qwen2 \xe2\x96\x81 tokens"),
           kv_string("v.empty_string", ""),
           kv("v.u64", kU64, uint64_t(0xfedcba9876543210ull)),
           kv("v.i64", kI64, int64_t(-1234567890123456789ll)),
           kv("v.f64", kF64, 3.141592653589793),
           kv_array("a.u8", kU8, std::vector<uint8_t>{1, 2, 255}),
           kv_array("a.i8", kI8, std::vector<int8_t>{-1, 0, 127}),
           kv_array("a.u16", kU16, std::vector<uint16_t>{65535, 7}),
           kv_array("a.i16", kI16, std::vector<int16_t>{-32768, 5}),
           kv_array("a.u32", kU32, std::vector<uint32_t>{4864, 4864, 9728}),
           kv_array("a.i32", kI32, std::vector<int32_t>{-7, 1, 3, 6, 5, 5}),
           kv_array("a.f32", kF32v, std::vector<float>{-1.5f, 0.25f, 1e30f}),
           kv_array("a.bool", kBool, std::vector<uint8_t>{1, 0, 1}),
           kv_string_array("a.string", {"!", "\"", "<|im_end|>", "", "Ġthe"}),
           kv_array("a.u64", kU64, std::vector<uint64_t>{uint64_t(1) << 40}),
           kv_array("a.i64", kI64, std::vector<int64_t>{-(int64_t(1) << 40), 3}),
           kv_array("a.f64", kF64, std::vector<double>{2.5, -0.125}),
           kv_array("a.empty", kU32, std::vector<uint32_t>{}),
           kv_array("a.u64_huge", kU64, std::vector<uint64_t>{~uint64_t(0)})};
  return s;
}

}  // namespace

TEST_CASE("reads back every metadata value type", "[gguf]") {
  const GgufSpec spec = every_value_type();
  TempFile tmp(spec.build());
  const auto f = File::open(tmp.path());
  CHECK(f->version() == 3);
  CHECK(f->alignment() == 32);
  CHECK(f->tensors().empty());
  CHECK(f->metadata().size() == spec.kvs.size());

  CHECK(f->get_uint("v.u8") == 200u);
  CHECK(f->get_int("v.i8") == -100);
  CHECK(f->get_uint("v.u16") == 60000u);
  CHECK(f->get_int("v.i16") == -30000);
  CHECK(f->get_uint("v.u32") == 4000000000u);
  CHECK(f->get_int("v.u32") == 4000000000ll);
  CHECK(f->get_int("v.i32") == -2000000000);
  CHECK(f->get_float("v.f32") == double(1e-6f));
  CHECK(f->get_bool("v.bool_true") == true);
  CHECK(f->get_bool("v.bool_false") == false);
  CHECK(f->get_string("v.string") == std::string_view("qwen2 \xe2\x96\x81 tokens"));
  CHECK(f->get_string("v.empty_string") == std::string_view(""));
  CHECK(f->get_uint("v.u64") == 0xfedcba9876543210ull);
  CHECK(f->get_int("v.i64") == -1234567890123456789ll);
  CHECK(f->get_float("v.f64") == 3.141592653589793);
  CHECK(f->get_float("v.i16") == -30000.0);  // integers are numbers too

  CHECK(f->get_int_array("a.u8") == std::vector<int64_t>{1, 2, 255});
  CHECK(f->get_int_array("a.i8") == std::vector<int64_t>{-1, 0, 127});
  CHECK(f->get_int_array("a.u16") == std::vector<int64_t>{65535, 7});
  CHECK(f->get_int_array("a.i16") == std::vector<int64_t>{-32768, 5});
  CHECK(f->get_int_array("a.u32") == std::vector<int64_t>{4864, 4864, 9728});
  CHECK(f->get_int_array("a.i32") == std::vector<int64_t>{-7, 1, 3, 6, 5, 5});
  CHECK(f->get_float_array("a.f32") == std::vector<double>{-1.5, 0.25, double(1e30f)});
  CHECK(f->get_float_array("a.i32") == std::vector<double>{-7, 1, 3, 6, 5, 5});
  CHECK(f->get_string_array("a.string") ==
        std::vector<std::string_view>{"!", "\"", "<|im_end|>", "", "Ġthe"});
  CHECK(f->get_int_array("a.u64") == std::vector<int64_t>{int64_t(1) << 40});
  CHECK(f->get_int_array("a.i64") == std::vector<int64_t>{-(int64_t(1) << 40), 3});
  CHECK(f->get_float_array("a.f64") == std::vector<double>{2.5, -0.125});
  CHECK(f->get_int_array("a.empty") == std::vector<int64_t>{});
  CHECK(f->array_length("a.string") == 5u);
  CHECK(f->array_length("a.bool") == 3u);
  CHECK(f->array_length("a.empty") == 0u);

  CHECK(f->has("v.u8"));
  CHECK_FALSE(f->has("v.missing"));
  CHECK(f->type_of("a.u32") == ValueType::ARRAY);
  CHECK(f->type_of("v.f64") == ValueType::F64);
  CHECK(f->type_of("v.bool_true") == ValueType::BOOL);
  CHECK_FALSE(f->type_of("nope").has_value());
  CHECK_FALSE(f->get_uint("nope").has_value());
  CHECK_FALSE(f->get_string("nope").has_value());
  CHECK_FALSE(f->get_string_array("nope").has_value());
  CHECK_FALSE(f->array_length("nope").has_value());
}

TEST_CASE("typed getters reject wrong types and out-of-range values", "[gguf]") {
  TempFile tmp(every_value_type().build());
  const auto f = File::open(tmp.path());
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const apr::Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  using Catch::Matchers::Contains;
  CHECK_THAT(message([&] { f->get_uint("v.string"); }),
             Contains("'v.string'") && Contains("string") && Contains("unsigned"));
  CHECK_THAT(message([&] { f->get_uint("v.i8"); }), Contains("'v.i8'") && Contains("-100"));
  CHECK_THAT(message([&] { f->get_int("a.u64_huge"); }), Contains("array"));
  CHECK_THAT(message([&] { f->get_int_array("a.u64_huge"); }), Contains("does not fit"));
  CHECK_THAT(message([&] { f->get_int("v.f32"); }), Contains("'v.f32'") && Contains("f32"));
  CHECK_THAT(message([&] { f->get_float("v.string"); }), Contains("string"));
  CHECK_THAT(message([&] { f->get_bool("v.u8"); }), Contains("u8") && Contains("bool"));
  CHECK_THAT(message([&] { f->get_string("v.u32"); }), Contains("u32") && Contains("string"));
  CHECK_THAT(message([&] { f->get_string_array("a.u32"); }),
             Contains("'a.u32'") && Contains("u32") && Contains("string"));
  CHECK_THAT(message([&] { f->get_float_array("a.string"); }), Contains("string"));
  CHECK_THAT(message([&] { f->get_int_array("a.f32"); }), Contains("f32"));
  CHECK_THAT(message([&] { f->get_string_array("v.string"); }), Contains("expected an array"));
  CHECK_THAT(message([&] { f->array_length("v.u32"); }), Contains("'v.u32'"));
  CHECK(message([&] { f->get_uint("v.u8"); }) == "(no error)");
}

TEST_CASE("reads tensors: shapes, types, offsets and data", "[gguf]") {
  std::mt19937_64 rng(5);
  GgufSpec s;
  s.version = 2;
  s.kvs = {kv_string("general.architecture", "qwen2"), kv("general.alignment", kU32, uint32_t(64))};
  s.alignment = 64;
  s.tensors = {
      {"token_embd.weight", {64, 10}, kQ8_0, random_blocks(kQ8_0, 640, rng), {}, {}},
      {"output_norm.weight", {64}, kF32, random_blocks(kF32, 64, rng), {}, {}},
      {"blk.0.ffn_down.weight", {256, 3}, kQ4_K, random_blocks(kQ4_K, 768, rng), {}, {}},
      {"blk.0.attn_q.weight", {32, 2, 1, 2}, kF16, random_blocks(kF16, 128, rng), {}, {}},
      {"iq.weight", {32, 4}, 20, random_bytes(4 * 18, rng), {}, {}},  // IQ4_NL: listed
      {"scalar", {}, kF32, random_blocks(kF32, 1, rng), {}, {}},
      {std::string(63, 'n'), {8}, kBF16, random_blocks(kBF16, 8, rng), {}, {}},
  };
  s.pad_last_tensor = true;
  const std::vector<uint8_t> bytes = s.build();
  TempFile tmp(bytes);
  const auto f = File::open(tmp.path());
  CHECK(f->version() == 2);
  CHECK(f->alignment() == 64);
  CHECK(f->file_size() == bytes.size());
  CHECK(f->data_offset() % 64 == 0);
  REQUIRE(f->tensors().size() == s.tensors.size());

  uint64_t expected_offset = 0;
  for (size_t i = 0; i < s.tensors.size(); ++i) {
    const TensorSpec& want = s.tensors[i];
    const auto& got = f->tensors()[i];
    INFO(want.name);
    CHECK(got.name == want.name);
    CHECK(got.n_dims == want.ne.size());
    uint64_t n = 1;
    for (size_t d = 0; d < 4; ++d) {
      const uint64_t ne = d < want.ne.size() ? want.ne[d] : 1;
      CHECK(got.ne[d] == ne);
      n *= ne;
    }
    CHECK(got.n_elements == n);
    CHECK(got.type == want.type);
    CHECK(got.nbytes == want.data.size());
    CHECK(got.offset == expected_offset);
    CHECK(got.file_offset == f->data_offset() + got.offset);
    REQUIRE(got.data != nullptr);
    CHECK(std::vector<uint8_t>(got.data, got.data + got.nbytes) == want.data);
    CHECK(f->find_tensor(want.name) == &got);
    expected_offset = s.align(expected_offset + want.data.size());
  }
  CHECK(f->find_tensor("output.weight") == nullptr);
  CHECK(apr::gguf::shape_string(f->tensors()[0]) == "[64, 10]");
  CHECK(apr::gguf::shape_string(f->tensors()[3]) == "[32, 2, 1, 2]");
  CHECK(apr::gguf::shape_string(f->tensors()[5]) == "[]");
  CHECK(f->tensors()[5].n_elements == 1);

  // The tensor bytes decode through the mapping exactly as written.
  const auto* q8 = f->find_tensor("token_embd.weight");
  CHECK(ref_element(kQ8_0, q8->data, 100) == ref_element(kQ8_0, s.tensors[0].data.data(), 100));
}

TEST_CASE("accepts spec-valid non-contiguous layouts", "[gguf]") {
  std::mt19937_64 rng(9);
  GgufSpec s;
  s.tensors = {{"b", {32}, kF32, random_blocks(kF32, 32, rng), {}, uint64_t(256)},  // gap
               {"a", {16}, kF32, random_blocks(kF32, 16, rng), {}, uint64_t(0)}};   // reordered
  TempFile tmp(s.build());
  const auto f = File::open(tmp.path());
  CHECK(f->find_tensor("a")->offset == 0);
  CHECK(f->find_tensor("b")->offset == 256);
  CHECK(std::vector<uint8_t>(f->find_tensor("b")->data, f->find_tensor("b")->data + 128) ==
        s.tensors[0].data);
}

TEST_CASE("accepts zero tensors and an empty metadata section", "[gguf]") {
  GgufSpec s;
  TempFile tmp(s.build());
  const auto f = File::open(tmp.path());
  CHECK(f->tensors().empty());
  CHECK(f->metadata().empty());
  CHECK(f->file_size() == 24);
  CHECK(f->metadata_summary().empty());
}

TEST_CASE("metadata_summary lists every key in file order", "[gguf]") {
  GgufSpec s;
  s.kvs = {kv_string("general.name", "tiny\nmodel"),
           kv("qwen2.block_count", kU32, uint32_t(24)),
           kv("qwen2.rope.freq_base", kF32v, 1000000.0f),
           kv("flag", kBool, uint8_t(1)),
           kv_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "d", "e", "f"}),
           kv_array("scores", kF32v, std::vector<float>{0.5f, -1.0f}),
           kv("neg", kI32, int32_t(-3))};
  TempFile tmp(s.build());
  const auto summary = File::open(tmp.path())->metadata_summary();
  REQUIRE(summary.size() == 7);
  CHECK(summary[0] == std::pair<std::string, std::string>{"general.name", "\"tiny\\nmodel\""});
  CHECK(summary[1].second == "24");
  CHECK(summary[2].second == "1e+06");
  CHECK(summary[3].second == "true");
  CHECK(summary[4].first == "tokenizer.ggml.tokens");
  CHECK(summary[4].second == "string[6] [\"a\", \"b\", \"c\", \"d\", ...]");
  CHECK(summary[5].second == "f32[2] [0.5, -1]");
  CHECK(summary[6].second == "-3");
}
