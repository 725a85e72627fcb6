// SPDX-License-Identifier: MIT
// Arbitrary bytes and odd vocabularies must neither crash nor lose input.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_vocabularies.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace apr;
using Ids = std::vector<int32_t>;

namespace {

std::string random_bytes(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s;
  for (size_t i = 0; i < n; ++i) s += static_cast<char>(byte(rng));
  return s;
}

}  // namespace

TEST_CASE("arbitrary bytes round-trip through every model", "[tokenizer][robustness]") {
  std::mt19937 rng(4321);
  std::vector<std::unique_ptr<Tokenizer>> tokenizers;
  for (const char* pre : {"qwen2", "llama-bpe", "gpt-2", "default"}) {
    tokenizers.push_back(
        Tokenizer::from_vocab(test::byte_level_vocab({{"a", "b"}, {"\xC3", "\xA9"}}, {}, pre)));
  }
  const std::string sp = "\xE2\x96\x81";
  auto spm = Tokenizer::from_vocab(test::spm_vocab({{sp, -1}, {"a", -2}, {sp + "a", -3}}));
  for (int i = 0; i < 300; ++i) {
    const std::string text = random_bytes(rng, 1 + i % 64);
    for (const auto& tok : tokenizers) {
      const Ids ids = tok->encode(text, false);
      CHECK(tok->decode(ids) == text);
      std::string streamed;
      for (int32_t id : ids) streamed += tok->token_to_piece(id);
      CHECK(streamed == text);
    }
    // SentencePiece writes spaces as U+2581, so a text already holding U+2581 decodes with
    // spaces there; arbitrary bytes rarely contain it, and never when we replace E2 bytes.
    std::string no_marker = text;
    for (char& c : no_marker) {
      if (static_cast<unsigned char>(c) == 0xE2) c = 'x';
    }
    CHECK(spm->decode(spm->encode(no_marker)) == no_marker);
  }
}

TEST_CASE("odd vocabularies are accepted without crashing", "[tokenizer][robustness]") {
  // Empty and duplicate token texts, NaN and infinite scores, out-of-range special ids.
  const std::string sp = "\xE2\x96\x81";
  VocabData v =
      test::spm_vocab({{sp, -1}, {"", -1}, {"a", -2}, {"a", -3}, {"aa", NAN}, {"aaa", INFINITY}});
  v.bos_id = -5;
  v.eos_id = 1'000'000;
  v.unk_id = 2;
  auto tok = Tokenizer::from_vocab(v);
  CHECK(tok->bos_id() == 1);  // invalid ids keep the defaults
  CHECK(tok->eos_id() == 2);
  const Ids ids = tok->encode("aaaa", false);
  // "aa" has a NaN score, which ranks below everything: it merges (leftmost first) only because
  // nothing else can; then "aaa" (+inf) forms.
  CHECK(tok->decode(ids) == "aaaa");
  CHECK(ids.size() == 3);  // "▁", "aaa", "a"

  // A vocabulary of one token that is not even a byte: text falls back to nothing it can emit.
  VocabData tiny;
  tiny.model = "gpt2";
  tiny.tokens = {"only"};
  CHECK(Tokenizer::from_vocab(tiny)->encode("xyz").empty());
}
