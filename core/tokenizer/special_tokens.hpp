// SPDX-License-Identifier: MIT
// Splitting text around special tokens written literally in it, before any BPE.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.hpp"

namespace apr {

struct Fragment {
  int32_t token;          // >= 0: this fragment is that special token
  std::string_view text;  // otherwise: raw text to encode
};

class SpecialTokenMatcher {
 public:
  // Takes the CONTROL, USER_DEFINED and UNKNOWN tokens of the vocabulary.
  explicit SpecialTokenMatcher(const Vocab& vocab);

  // Special tokens are matched longest first over the whole text. When parse_special is false,
  // only USER_DEFINED tokens are matched. A match of a token marked rstrip drops the ASCII
  // whitespace that follows it.
  std::vector<Fragment> split(std::string_view text, bool parse_special) const;

 private:
  struct Entry {
    int32_t id;
    std::string_view text;
    bool user_defined;
    bool rstrip;
  };
  std::vector<Entry> entries_;  // longest text first
};

}  // namespace apr
