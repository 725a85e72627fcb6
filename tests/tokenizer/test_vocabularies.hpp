// SPDX-License-Identifier: MIT
// Small vocabularies built in memory for the tokenizer tests.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/byte_level.hpp"
#include "tokenizer/vocab_data.hpp"

namespace apr::test {

// Byte-level BPE vocabulary: ids 0..255 are the single bytes (in byte order, written in the
// GPT-2 alphabet), then one token per merge, in merge order, then the given special tokens.
// Merges are given as raw byte strings and written in the alphabet here.
inline VocabData byte_level_vocab(const std::vector<std::pair<std::string, std::string>>& merges,
                                  const std::vector<std::pair<std::string, int32_t>>& specials,
                                  const std::string& pre = "qwen2") {
  VocabData v;
  v.model = "gpt2";
  v.pre = pre;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(byte_level::encode(std::string(1, static_cast<char>(b))));
    v.types.push_back(kTokenNormal);
  }
  for (const auto& [left, right] : merges) {
    const std::string l = byte_level::encode(left), r = byte_level::encode(right);
    v.merges.push_back(l + " " + r);
    v.tokens.push_back(l + r);
    v.types.push_back(kTokenNormal);
  }
  for (const auto& [text, type] : specials) {
    v.tokens.push_back(text);
    v.types.push_back(type);
  }
  return v;
}

// SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then the given
// pieces with their scores (spaces written as U+2581 by the caller).
inline VocabData spm_vocab(const std::vector<std::pair<std::string, float>>& pieces) {
  VocabData v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.scores = {0.0f, 0.0f, 0.0f};
  v.types = {kTokenUnknown, kTokenControl, kTokenControl};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.tokens.push_back(name);
    v.scores.push_back(0.0f);
    v.types.push_back(kTokenByte);
  }
  for (const auto& [text, score] : pieces) {
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.types.push_back(kTokenNormal);
  }
  return v;
}

constexpr int32_t kFirstSpmPiece = 3 + 256;

}  // namespace apr::test
