// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "test_vocabularies.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace apr;
using Ids = std::vector<int32_t>;

namespace {

const std::string kSp = "\xE2\x96\x81";  // U+2581

// Pieces from id 259 on, in this order.
const std::vector<std::pair<std::string, float>> kPieces = {
    {kSp, -20},        {"h", -21},          {"e", -22},           {"l", -23},       {"o", -24},
    {"w", -25},        {"r", -26},          {"d", -27},           {"ll", -1},       {kSp + "h", -2},
    {"or", -3},        {"ld", -4},          {kSp + "w", -5},      {kSp + "he", -6}, {"llo", -7},
    {kSp + "wor", -8}, {kSp + "hello", -9}, {kSp + "world", -10},
};

int32_t piece(const std::string& text) {
  for (size_t i = 0; i < kPieces.size(); ++i) {
    if (kPieces[i].first == text) return test::kFirstSpmPiece + static_cast<int32_t>(i);
  }
  FAIL("no piece " << text);
  return -1;
}

int32_t byte_token(unsigned char b) {
  return 3 + b;
}

}  // namespace

TEST_CASE("SentencePiece BPE gives known ids", "[tokenizer][spm]") {
  auto tok = Tokenizer::from_vocab(test::spm_vocab(kPieces));
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  CHECK(tok->unk_id() == 0);
  CHECK(tok->encode("hello world") == Ids{1, piece(kSp + "hello"), piece(kSp + "world")});
  CHECK(tok->encode("hello world", false) == Ids{piece(kSp + "hello"), piece(kSp + "world")});
  // Equal scores: the leftmost pair merges first.
  CHECK(tok->encode("lll", false) == Ids{piece(kSp), piece("ll"), piece("l")});
  // Highest score first: "ll" (-1) beats "el"-less "he" paths; "llo" forms from "ll" + "o".
  CHECK(tok->encode("hello", false) == Ids{piece(kSp + "hello")});
  CHECK(tok->encode("", true) == Ids{1});
  CHECK(tok->encode("", false) == Ids{});
}

TEST_CASE("SentencePiece byte fallback and unknown characters", "[tokenizer][spm]") {
  auto tok = Tokenizer::from_vocab(test::spm_vocab(kPieces));
  CHECK(tok->encode("h\xC3\xA9", false) ==
        Ids{piece(kSp + "h"), byte_token(0xC3), byte_token(0xA9)});
  // A stray byte falls back to itself.
  CHECK(tok->encode("h\xFF", false) == Ids{piece(kSp + "h"), byte_token(0xFF)});

  // Without byte tokens, an unknown character becomes <unk> once per byte.
  VocabData v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>", kSp, "a"};
  v.types = {kTokenUnknown, kTokenControl, kTokenControl, kTokenNormal, kTokenNormal};
  CHECK(Tokenizer::from_vocab(v)->encode("a\xC3\xA9", false) == Ids{3, 4, 0, 0});
}

TEST_CASE("SentencePiece space prefix", "[tokenizer][spm]") {
  VocabData v = test::spm_vocab(kPieces);
  v.add_space_prefix = false;
  auto tok = Tokenizer::from_vocab(v);
  CHECK(tok->encode("hello", false) == Ids{piece("h"), piece("e"), piece("llo")});
  CHECK(tok->encode(" hello", false) == Ids{piece(kSp + "hello")});

  // With the prefix, each fragment after a special token gets its own space.
  auto spaced = Tokenizer::from_vocab(test::spm_vocab(kPieces));
  CHECK(spaced->encode("hello</s>world") == Ids{1, piece(kSp + "hello"), 2, piece(kSp + "world")});
  CHECK(spaced->encode("hello</s>world", true, false) ==
        Ids{1, piece(kSp + "hello"), byte_token('<'), byte_token('/'), byte_token('s'),
            byte_token('>'), piece("w"), piece("or"), piece("ld")});
}

TEST_CASE("SentencePiece BOS and EOS settings", "[tokenizer][spm][bos]") {
  VocabData v = test::spm_vocab(kPieces);
  v.add_bos = false;
  v.add_eos = true;
  CHECK(Tokenizer::from_vocab(v)->encode("hello") == Ids{piece(kSp + "hello"), 2});
  v.bos_id = 5;
  v.eos_id = 6;
  v.add_bos = true;
  CHECK(Tokenizer::from_vocab(v)->encode("hello") == Ids{5, piece(kSp + "hello"), 6});
  CHECK(Tokenizer::from_vocab(v)->is_end_of_generation(6));
  CHECK_FALSE(Tokenizer::from_vocab(v)->is_end_of_generation(5));
  // </s> ends generation by its text, whatever the EOS id (llama.cpp's end-of-generation list).
  CHECK(Tokenizer::from_vocab(v)->is_end_of_generation(2));
}

TEST_CASE("SentencePiece pieces and decoding", "[tokenizer][spm][decode]") {
  auto tok = Tokenizer::from_vocab(test::spm_vocab(kPieces));
  CHECK(tok->token_to_piece(piece(kSp + "hello")) == " hello");
  CHECK(tok->token_to_piece(byte_token(0x41)) == "A");
  CHECK(tok->token_to_piece(1).empty());
  CHECK(tok->token_to_piece(1, true) == "<s>");
  CHECK(tok->token_to_piece(0).empty());
  CHECK(tok->token_to_piece(0, true) == "<unk>");

  CHECK(tok->decode(tok->encode("hello world")) == "hello world");
  CHECK(tok->decode(tok->encode("  hello")) == "  hello");
  CHECK(tok->decode(tok->encode("h\xC3\xA9 \xF0\x9F\x98\x80!")) == "h\xC3\xA9 \xF0\x9F\x98\x80!");
  CHECK(tok->decode(Ids{1, piece(kSp + "hello")}, true) == "<s>hello");
}

TEST_CASE("Phi-3 models strip the whitespace right of special tokens", "[tokenizer][spm]") {
  // llama.cpp keys this on general.name: "phi3" or "phi-3" in it, in any case.
  VocabData v = test::spm_vocab(kPieces);
  for (const char* special : {"<|user|>", "<|end|>", "<|endoftext|>"}) {
    v.tokens.push_back(special);
    v.scores.push_back(0.0f);
    v.types.push_back(kTokenControl);
  }
  const int32_t user = static_cast<int32_t>(v.tokens.size()) - 3, end = user + 1, eot = user + 2;
  v.name = "Phi3";
  auto phi3 = Tokenizer::from_vocab(v);
  CHECK(phi3->encode("<|user|>\n hello<|end|>\n", false) == Ids{user, piece(kSp + "hello"), end});
  // </s> is stripped after too; <s>, <unk> and <|endoftext|> are not.
  CHECK(phi3->encode("</s> hello", false) == Ids{2, piece(kSp + "hello")});
  CHECK(phi3->encode("<s> hello", false) == Ids{1, piece(kSp), piece(kSp + "hello")});
  CHECK(phi3->encode("<|endoftext|> hello", false) == Ids{eot, piece(kSp), piece(kSp + "hello")});
  // Without parse_special nothing is a special token, so nothing is stripped.
  CHECK(phi3->encode("<|user|> hello", false, false) ==
        Tokenizer::from_vocab(test::spm_vocab(kPieces))->encode("<|user|> hello", false));

  v.name = "Phi 3.5 Mini Instruct";
  CHECK(Tokenizer::from_vocab(v)->encode("</s> hello", false) ==
        Ids{2, piece(kSp), piece(kSp + "hello")});
  v.name = "microsoft/PHI-3-mini";
  CHECK(Tokenizer::from_vocab(v)->encode("</s> hello", false) == Ids{2, piece(kSp + "hello")});
}

TEST_CASE("a byte-fallback vocabulary missing byte tokens is an error", "[tokenizer][spm]") {
  VocabData v = test::spm_vocab(kPieces);
  v.tokens[3 + 0x41] = "<0x41-gone>";  // neither <0x41> nor "A" remains
  REQUIRE_THROWS_AS(Tokenizer::from_vocab(v), Error);
  REQUIRE_THROWS_WITH(Tokenizer::from_vocab(v),
                      Catch::Contains("byte-fallback") && Catch::Contains("<0x41>"));
  // A single-character token stands in for its byte, as in llama.cpp.
  v.tokens.push_back("A");
  v.scores.push_back(0.0f);
  v.types.push_back(kTokenNormal);
  const auto tok = Tokenizer::from_vocab(v);
  CHECK(tok->encode("A", false) == Ids{piece(kSp), static_cast<int32_t>(v.tokens.size()) - 1});
}

TEST_CASE("empty token texts are named as llama.cpp names them", "[tokenizer][spm]") {
  VocabData v = test::spm_vocab(kPieces);
  v.tokens.push_back("");
  v.scores.push_back(0.0f);
  v.types.push_back(kTokenNormal);
  const auto id = static_cast<int32_t>(v.tokens.size()) - 1;
  CHECK(Tokenizer::from_vocab(v)->token_text(id) == "[EMPTY_" + std::to_string(id) + "]");
}

TEST_CASE("end-of-generation texts and llama.cpp's exceptions to them", "[tokenizer][spm]") {
  const auto with = [](std::vector<std::pair<std::string, int32_t>> extra) {
    VocabData v = test::spm_vocab(kPieces);
    for (const auto& [text, type] : extra) {
      v.tokens.push_back(text);
      v.scores.push_back(0.0f);
      v.types.push_back(type);
    }
    return v;
  };
  const int32_t first = test::kFirstSpmPiece + static_cast<int32_t>(kPieces.size());
  // A user-defined </s> (Gemma's HTML tag) becomes a control token that ends generation.
  VocabData gemma = with({{"<eos>", kTokenControl}});
  gemma.types[2] = kTokenUserDefined;
  auto tok = Tokenizer::from_vocab(gemma);
  CHECK(tok->token_type(2) == kTokenControl);
  CHECK(tok->is_end_of_generation(2));
  CHECK(tok->is_end_of_generation(first));
  CHECK(tok->encode("a</s>", false, false).back() != 2);  // not matched without parse_special

  // With <|tool_response> (Gemma 4) </s> is a normal token again.
  tok = Tokenizer::from_vocab(with({{"<|tool_response>", kTokenControl}}));
  CHECK(tok->token_type(2) == kTokenNormal);
  CHECK_FALSE(tok->is_end_of_generation(2));
  CHECK(tok->is_end_of_generation(first));

  // gpt-oss: with <|return|> and <|call|>, <|end|> is user-defined and ends nothing.
  tok = Tokenizer::from_vocab(with(
      {{"<|end|>", kTokenControl}, {"<|return|>", kTokenControl}, {"<|call|>", kTokenControl}}));
  CHECK(tok->token_type(first) == kTokenUserDefined);
  CHECK_FALSE(tok->is_end_of_generation(first));
  CHECK(tok->is_end_of_generation(first + 1));
  tok = Tokenizer::from_vocab(with({{"<|end|>", kTokenNormal}, {"<|return|>", kTokenControl}}));
  CHECK(tok->token_type(first) == kTokenControl);
  CHECK(tok->is_end_of_generation(first));
}
