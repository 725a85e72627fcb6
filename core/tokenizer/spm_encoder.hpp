// SPDX-License-Identifier: MIT
// SentencePiece BPE (tokenizer.ggml.model = "llama"): characters merged by the score of the
// token they form, highest first; characters no token covers become <0xXX> byte tokens.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.hpp"

namespace apr {

class SpmEncoder {
 public:
  SpmEncoder(const Vocab& vocab, int32_t unk_id);

  // `text` is one fragment with spaces already written as U+2581.
  void encode(std::string_view text, std::vector<int32_t>& out) const;

 private:
  void emit_bytes(std::string_view symbol, std::vector<int32_t>& out) const;

  const Vocab& vocab_;
  int32_t unk_id_;
  int32_t byte_ids_[256];  // -1 where the vocabulary has no token for that byte
};

}  // namespace apr
