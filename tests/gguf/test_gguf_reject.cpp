// SPDX-License-Identifier: MIT
// Malformed files: each must throw apr::Error with a one-line message naming the problem.
#include <catch2/catch.hpp>
#include <functional>
#include <random>

#include <sys/stat.h>
#include <unistd.h>

#include "common/error.hpp"
#include "conformance/ref_dequant.hpp"
#include "gguf/gguf_file.hpp"
#include "gguf_builder.hpp"

using namespace apr_test;
using apr::gguf::File;

namespace {

// A small valid file with metadata of several kinds and three tensors.
GgufSpec small_valid() {
  std::mt19937_64 rng(21);
  GgufSpec s;
  s.kvs = {kv_string("general.architecture", "llama"), kv("llama.block_count", kU32, uint32_t(1)),
           kv_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a"}),
           kv_array("tokenizer.ggml.scores", kF32v, std::vector<float>{0, 0, -1})};
  s.tensors = {{"token_embd.weight", {32, 3}, kQ8_0, random_blocks(kQ8_0, 96, rng), {}, {}},
               {"output_norm.weight", {32}, kF32, random_blocks(kF32, 32, rng), {}, {}},
               {"output.weight", {32, 3}, kF16, random_blocks(kF16, 96, rng), {}, {}}};
  return s;
}

std::string open_error(const std::vector<uint8_t>& bytes) {
  TempFile tmp(bytes);
  try {
    File::open(tmp.path());
  } catch (const apr::Error& e) {
    const std::string msg = e.what();
    // One line, starting with the file it is about.
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(msg.rfind(tmp.path().string() + ": ", 0) == 0);
    return msg;
  }
  return "(no error)";
}

std::vector<uint8_t> with_u32_at(std::vector<uint8_t> b, size_t at, uint32_t v) {
  std::memcpy(b.data() + at, &v, 4);
  return b;
}

std::vector<uint8_t> with_u64_at(std::vector<uint8_t> b, size_t at, uint64_t v) {
  std::memcpy(b.data() + at, &v, 8);
  return b;
}

struct Case {
  const char* what;
  std::function<std::vector<uint8_t>()> make;
  const char* expected;  // substring of the message
};

GgufSpec with_kv(KvSpec extra) {
  GgufSpec s = small_valid();
  s.kvs.push_back(std::move(extra));
  return s;
}

GgufSpec with_tensor(std::function<void(TensorSpec&)> edit) {
  GgufSpec s = small_valid();
  edit(s.tensors[1]);
  return s;
}

KvSpec raw_kv(std::string key, uint32_t type, Bytes value) {
  return {std::move(key), type, value.data};
}

}  // namespace

TEST_CASE("the unmodified base file is valid", "[gguf][reject]") {
  CHECK(open_error(small_valid().build()) == "(no error)");
  GgufSpec name63 = with_tensor([](TensorSpec& t) { t.name = std::string(63, 'x'); });
  CHECK(open_error(name63.build()) == "(no error)");
}

TEST_CASE("malformed files are rejected with a message naming the problem", "[gguf][reject]") {
  const std::vector<uint8_t> valid = small_valid().build();
  const std::vector<Case> cases = {
      {"empty file", [] { return std::vector<uint8_t>{}; }, "not a GGUF file"},
      {"short file",
       [] {
         return std::vector<uint8_t>{'G', 'G', 'U'};
       },
       "not a GGUF file"},
      {"bad magic", [&] { return with_u32_at(valid, 0, 0x46554746); }, "bad magic"},
      {"header cut short", [&] { return std::vector<uint8_t>(valid.begin(), valid.begin() + 12); },
       "truncated"},
      {"version 0", [&] { return with_u32_at(valid, 4, 0); }, "unsupported GGUF version 0"},
      {"version 1", [&] { return with_u32_at(valid, 4, 1); }, "version 1"},
      {"version 4", [&] { return with_u32_at(valid, 4, 4); }, "unsupported GGUF version 4"},
      {"byte-swapped version", [&] { return with_u32_at(valid, 4, 0x03000000); }, "byte-swapped"},
      {"absurd tensor count", [&] { return with_u64_at(valid, 8, uint64_t(1) << 40); },
       "absurd counts"},
      {"absurd kv count", [&] { return with_u64_at(valid, 16, uint64_t(1) << 40); },
       "absurd counts"},
      {"negative tensor count", [&] { return with_u64_at(valid, 8, ~uint64_t(0)); }, "negative"},
      {"negative kv count", [&] { return with_u64_at(valid, 16, ~uint64_t(0) - 5); }, "negative"},
      {"key longer than file", [&] { return with_u64_at(valid, 24, 5000); },
       "runs past the end of the file"},
      {"string over 1 GiB", [&] { return with_u64_at(valid, 24, (uint64_t(1) << 30) + 1); },
       "1 GiB"},
      {"string value longer than file",
       [] { return with_kv(raw_kv("k", kString, Bytes().u64(1ull << 20).u8('x'))).build(); },
       "runs past the end of the file"},
      {"array count above 2^30",
       [] { return with_kv(raw_kv("k", kArray, Bytes().u32(kU8).u64((1ull << 30) + 1))).build(); },
       "2^30"},
      {"array count times element size overflows the file",
       [] { return with_kv(raw_kv("k", kArray, Bytes().u32(kU64).u64(1ull << 29))).build(); },
       "runs past the end of the file"},
      {"string array longer than file",
       [] {
         GgufSpec s;
         s.kvs = {raw_kv("k", kArray, Bytes().u32(kString).u64(1000).str("a"))};
         return s.build();
       },
       "truncated: metadata #0 'k' element 1 length"},
      {"string array element longer than file",
       [] {
         return with_kv(raw_kv("k", kArray, Bytes().u32(kString).u64(2).str("a").u64(5000)))
             .build();
       },
       "metadata #4 'k' element 1: string of 5000 bytes runs past the end of the file"},
      {"nested array",
       [] {
         return with_kv(raw_kv("k", kArray, Bytes().u32(kArray).u64(1).u32(kU8).u64(1).u8(1)))
             .build();
       },
       "nested"},
      {"value type 13", [] { return with_kv(raw_kv("k", 13, Bytes().u64(0))).build(); },
       "value type 13"},
      {"array element type 13",
       [] { return with_kv(raw_kv("k", kArray, Bytes().u32(13).u64(0))).build(); },
       "element type 13"},
      {"empty key", [] { return with_kv(kv("", kU32, uint32_t(1))).build(); }, "empty key"},
      {"duplicate key", [] { return with_kv(kv("llama.block_count", kU32, uint32_t(2))).build(); },
       "'llama.block_count': duplicate key"},
      {"alignment 0", [] { return with_kv(kv("general.alignment", kU32, uint32_t(0))).build(); },
       "general.alignment 0 is not a power of two"},
      {"alignment 3", [] { return with_kv(kv("general.alignment", kU32, uint32_t(3))).build(); },
       "general.alignment 3 is not a power of two"},
      {"alignment not u32",
       [] { return with_kv(kv("general.alignment", kU64, uint64_t(32))).build(); },
       "general.alignment has type u64, expected u32"},
      {"tensor name of 64 bytes",
       [] { return with_tensor([](TensorSpec& t) { t.name = std::string(64, 'x'); }).build(); },
       "name of 64 bytes exceeds 63"},
      {"duplicate tensor name",
       [] { return with_tensor([](TensorSpec& t) { t.name = "token_embd.weight"; }).build(); },
       "'token_embd.weight': duplicate tensor name"},
      {"n_dims 5",
       [] {
         return with_tensor([](TensorSpec& t) { t.ne = {32, 1, 1, 1, 1}; }).build();
       },
       "tensor info #1 'output_norm.weight': n_dims 5 exceeds 4 (byte offset"},
      {"ne product overflow",
       [] {
         return with_tensor([](TensorSpec& t) { t.ne = {1ull << 32, 1ull << 32}; }).build();
       },
       "element count overflows"},
      {"negative ne", [] { return with_tensor([](TensorSpec& t) { t.ne = {~0ull}; }).build(); },
       "ne[0] is negative"},
      {"byte size overflow",
       [] { return with_tensor([](TensorSpec& t) { t.ne = {1ull << 62}; }).build(); },
       "byte size overflows"},
      {"type id 4", [] { return with_tensor([](TensorSpec& t) { t.type = 4; }).build(); },
       "type id 4 is not a valid ggml type"},
      {"type id 99", [] { return with_tensor([](TensorSpec& t) { t.type = 99; }).build(); },
       "type id 99 is not a valid ggml type"},
      {"ne[0] not a multiple of the block size",
       [] {
         return with_tensor([](TensorSpec& t) {
                  t.type = kQ4_0;
                  t.ne = {48};
                })
             .build();
       },
       "ne[0] = 48 is not a multiple of the Q4_0 block size 32"},
      {"misaligned offset",
       [] { return with_tensor([](TensorSpec& t) { t.offset = 16 + 96 * 34 / 32 * 32; }).build(); },
       "is not a multiple of the alignment 32"},
      {"data past end of file",
       [&] { return std::vector<uint8_t>(valid.begin(), valid.end() - 1); },
       "truncated: tensor 'output.weight' data ends at byte"},
      {"offset far past end of file",
       [] { return with_tensor([](TensorSpec& t) { t.offset = 1ull << 62; }).build(); },
       "truncated: tensor 'output_norm.weight'"},
      {"offset near 2^64",
       [] { return with_tensor([](TensorSpec& t) { t.offset = ~uint64_t(31); }).build(); },
       "beyond 2^64"},
      {"overlapping tensors",
       [] {
         return with_tensor([](TensorSpec& t) {
                  // Inside token_embd.weight, which holds 102 bytes from offset 0.
                  t.offset = 96;
                })
             .build();
       },
       "overlap"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const std::string msg = open_error(c.make());
    INFO(msg);
    CHECK_THAT(msg, Catch::Matchers::Contains(c.expected));
  }
}

TEST_CASE("every truncation of a valid file throws", "[gguf][reject]") {
  const std::vector<uint8_t> valid = small_valid().build();
  REQUIRE(open_error(valid) == "(no error)");
  for (size_t n = 0; n < valid.size(); ++n) {
    INFO("truncated to " << n << " of " << valid.size() << " bytes");
    CHECK_THROWS_AS(
        File::open(TempFile(std::vector<uint8_t>(valid.begin(), valid.begin() + n)).path()),
        apr::Error);
  }
}

TEST_CASE("random corruption never crashes", "[gguf][reject]") {
  // Flip random bytes of the header and directory: the reader must either accept the file or
  // throw apr::Error, never anything else (run under ASan/UBSan for the memory side).
  const std::vector<uint8_t> valid = small_valid().build();
  std::mt19937_64 rng(77);
  int rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> b = valid;
    const int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % 320] ^= uint8_t(1 + rng() % 255);
    TempFile tmp(b);
    try {
      const auto f = File::open(tmp.path());
      for (const auto& [key, text] : f->metadata_summary()) CHECK_FALSE(key.empty());
    } catch (const apr::Error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
}

TEST_CASE("files that cannot be read are reported, not crashed on", "[gguf][reject]") {
  using Catch::Matchers::Contains;
  const auto missing = std::filesystem::temp_directory_path() / "apr_no_such_file.gguf";
  CHECK_THROWS_WITH(File::open(missing), Contains("apr_no_such_file.gguf: cannot open"));
  CHECK_THROWS_WITH(File::open(std::filesystem::temp_directory_path()),
                    Contains("not a regular file"));
  const auto fifo = std::filesystem::temp_directory_path() /
                    ("apr_gguf_fifo_" + std::to_string(::getpid()) + ".gguf");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(File::open(fifo), Contains("not a regular file"));  // and does not block
  std::filesystem::remove(fifo);
}
