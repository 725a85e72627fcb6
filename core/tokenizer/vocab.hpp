// SPDX-License-Identifier: MIT
// The vocabulary in the form the encoders look things up in.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/vocab_data.hpp"

namespace apr {

struct Vocab {
  std::vector<std::string> text;
  std::vector<float> score;
  std::vector<int32_t> type;  // TokenType, possibly overridden (end-of-generation tokens)
  // Special tokens whose match in the text also swallows the whitespace right of it (llama.cpp's
  // RSTRIP attribute, which it gives the special tokens of Phi-3 models).
  std::vector<bool> rstrip;
  std::unordered_map<std::string, int32_t> ids;

  Vocab() = default;
  // An empty token text becomes "[EMPTY_<id>]", as llama.cpp names it.
  Vocab(std::vector<std::string> tokens, std::vector<float> scores, std::vector<int32_t> types);

  // The id of a token text, or -1. When a text occurs twice, the later id wins.
  int32_t find(const std::string& token) const {
    auto it = ids.find(token);
    return it == ids.end() ? -1 : it->second;
  }
  size_t size() const { return text.size(); }
};

}  // namespace apr
