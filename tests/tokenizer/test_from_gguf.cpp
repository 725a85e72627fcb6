// SPDX-License-Identifier: MIT
// Tokenizer::from_gguf on GGUF files written byte by byte here (independently of core/gguf).
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "common/error.hpp"
#include "gguf/gguf_file.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace apr;
using Ids = std::vector<int32_t>;

namespace {

// Metadata-only GGUF v3 writer: key/value pairs, no tensors.
class GgufBytes {
 public:
  GgufBytes& string(const std::string& key, const std::string& value) {
    header(key, 8);
    str(value);
    return count();
  }
  GgufBytes& u32(const std::string& key, uint32_t value) {
    header(key, 4);
    put(value);
    return count();
  }
  GgufBytes& boolean(const std::string& key, bool value) {
    header(key, 7);
    put(static_cast<uint8_t>(value));
    return count();
  }
  GgufBytes& strings(const std::string& key, const std::vector<std::string>& values) {
    header(key, 9);
    put(uint32_t{8});
    put(uint64_t{values.size()});
    for (const auto& v : values) str(v);
    return count();
  }
  template <typename T>
  GgufBytes& numbers(const std::string& key, uint32_t element_type, const std::vector<T>& values) {
    header(key, 9);
    put(element_type);
    put(uint64_t{values.size()});
    for (const T& v : values) put(v);
    return count();
  }

  // The encoded file: header, then the pairs in the order they were added.
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out;
    const auto append = [&](const void* p, size_t n) {
      out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    };
    const uint32_t magic = 0x46554747, version = 3;
    const uint64_t tensors = 0;
    append(&magic, 4);
    append(&version, 4);
    append(&tensors, 8);
    append(&n_kv_, 8);
    out.insert(out.end(), body_.begin(), body_.end());
    return out;
  }

 private:
  template <typename T>
  void put(T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    body_.insert(body_.end(), raw, raw + sizeof(T));
  }
  void str(const std::string& s) {
    put(uint64_t{s.size()});
    body_.insert(body_.end(), s.begin(), s.end());
  }
  void header(const std::string& key, uint32_t type) {
    str(key);
    put(type);
  }
  GgufBytes& count() {
    ++n_kv_;
    return *this;
  }

  std::vector<uint8_t> body_;
  uint64_t n_kv_ = 0;
};

struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const GgufBytes& g) {
    static int serial = 0;
    path = std::filesystem::temp_directory_path() / ("apr-tokenizer-" + std::to_string(::getpid()) +
                                                     "-" + std::to_string(serial++) + ".gguf");
    const auto bytes = g.bytes();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }
  ~TempFile() { std::filesystem::remove(path); }
};

std::unique_ptr<Tokenizer> load(const GgufBytes& g) {
  TempFile file(g);
  auto gguf = gguf::File::open(file.path);
  return Tokenizer::from_gguf(*gguf);
}

// Bytes 0..255 in the GPT-2 alphabet, then "he" (256), "hel" (257), then <|endoftext|> (258) and
// <|im_end|> (259), both control.
GgufBytes qwen2_like() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_level::encode(std::string(1, char(b))));
  tokens.insert(tokens.end(), {"he", "hel", "<|endoftext|>", "<|im_end|>"});
  std::vector<int32_t> types(tokens.size(), 1);
  types[258] = types[259] = 3;
  GgufBytes g;
  g.string("general.architecture", "qwen2")
      .string("tokenizer.ggml.model", "gpt2")
      .string("tokenizer.ggml.pre", "qwen2")
      .strings("tokenizer.ggml.tokens", tokens)
      .numbers("tokenizer.ggml.token_type", 5, types)
      .strings("tokenizer.ggml.merges", {"h e", "he l"})
      .u32("tokenizer.ggml.bos_token_id", 258)
      .u32("tokenizer.ggml.eos_token_id", 259)
      .boolean("tokenizer.ggml.add_bos_token", false);
  return g;
}

}  // namespace

TEST_CASE("from_gguf reads a byte-level vocabulary", "[tokenizer][gguf]") {
  auto tok = load(qwen2_like());
  CHECK(tok->vocab_size() == 260);
  CHECK(tok->model() == "gpt2");
  CHECK(tok->pre() == "qwen2");
  CHECK(tok->bos_id() == 258);
  CHECK(tok->eos_id() == 259);
  CHECK(tok->encode("hello<|im_end|>") == Ids{257, 'l', 'o', 259});
  CHECK(tok->is_end_of_generation(259));
  CHECK(tok->is_end_of_generation(258));
  CHECK(tok->decode(tok->encode("hello<|im_end|>")) == "hello");
}

TEST_CASE("from_gguf reads a SentencePiece vocabulary with integer scores", "[tokenizer][gguf]") {
  const std::string sp = "\xE2\x96\x81";
  GgufBytes g;
  g.string("general.architecture", "llama")
      .string("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens",
               {"<unk>", "<s>", "</s>", sp, "a", "b", sp + "a", "ab", sp + "ab"})
      .numbers("tokenizer.ggml.scores", 5, std::vector<int32_t>{0, 0, 0, -9, -9, -9, -1, -2, -3})
      .numbers("tokenizer.ggml.token_type", 5, std::vector<int32_t>{2, 3, 3, 1, 1, 1, 1, 1, 1});
  auto tok = load(g);
  // "▁a" (-1) merges before "ab" (-2); then "▁ab" (-3).
  CHECK(tok->encode("ab") == Ids{1, 8});
  CHECK(tok->encode("ab b", false) == Ids{8, 3, 5});
  CHECK(tok->decode(tok->encode("ab b")) == "ab b");
}

TEST_CASE("from_gguf errors name the file and the key", "[tokenizer][gguf][errors]") {
  GgufBytes no_tokens;
  no_tokens.string("general.architecture", "qwen2").string("tokenizer.ggml.model", "gpt2");
  {
    TempFile file(no_tokens);
    auto gguf = gguf::File::open(file.path);
    CHECK_THROWS_WITH(Tokenizer::from_gguf(*gguf),
                      Catch::StartsWith(file.path.string() + ": tokenizer.ggml.tokens"));
  }
  GgufBytes bad_model = qwen2_like();
  bad_model.string("tokenizer.ggml.model", "rwkv");  // a later duplicate is refused by the reader
  CHECK_THROWS_AS(load(bad_model), Error);

  GgufBytes bert;
  bert.string("general.architecture", "bert")
      .string("tokenizer.ggml.model", "bert")
      .strings("tokenizer.ggml.tokens", {"[CLS]"});
  CHECK_THROWS_WITH(load(bert), Catch::Contains("'bert'"));

  GgufBytes bad_merge;
  bad_merge.string("tokenizer.ggml.model", "gpt2")
      .strings("tokenizer.ggml.tokens", {"a", "b", "ab"})
      .strings("tokenizer.ggml.merges", {"a b", "a b", "ab"});
  CHECK_THROWS_WITH(load(bad_merge), Catch::Contains("tokenizer.ggml.merges[2]"));
}
