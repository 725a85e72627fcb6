// SPDX-License-Identifier: MIT
#include "tokenizer/vocab.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace apr {

Vocab::Vocab(std::vector<std::string> tokens, std::vector<float> scores, std::vector<int32_t> types)
    : text(std::move(tokens)), score(std::move(scores)), type(std::move(types)) {
  if (score.empty()) score.assign(text.size(), 0.0f);
  if (type.empty()) type.assign(text.size(), kTokenNormal);
  rstrip.assign(text.size(), false);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i].empty()) text[i] = "[EMPTY_" + std::to_string(i) + "]";
  }
  // A NaN would break the ordering SentencePiece merges rely on; it can never win a merge.
  for (float& s : score) {
    if (std::isnan(s)) s = -std::numeric_limits<float>::infinity();
  }
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[text[i]] = static_cast<int32_t>(i);
}

}  // namespace apr
