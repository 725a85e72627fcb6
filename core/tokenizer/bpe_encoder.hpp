// SPDX-License-Identifier: MIT
// Byte-level BPE (tokenizer.ggml.model = "gpt2"): pre-tokenizer split, GPT-2 byte alphabet,
// then merges by rank within each piece.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pre_tokenizer.hpp"
#include "tokenizer/vocab.hpp"

namespace apr {

class BpeEncoder {
 public:
  // Throws apr::Error naming the index of a merge that is not "left right".
  BpeEncoder(const Vocab& vocab, const std::vector<std::string>& merges, PreTokenizer pre);

  void encode(std::string_view text, std::vector<int32_t>& out) const;

 private:
  void encode_piece(const std::string& piece, std::vector<int32_t>& out) const;
  int rank(std::string_view left, std::string_view right) const;

  const Vocab& vocab_;
  PreTokenizer pre_;
  bool ignore_merges_;  // llama-bpe, tekken: a piece that is a whole token is emitted as it is
  std::unordered_map<std::string, int> ranks_;  // "left\0right" -> merge index
};

}  // namespace apr
