// SPDX-License-Identifier: MIT
// Text <-> token ids for GGUF vocabularies (byte-level BPE and SentencePiece), giving the ids
// llama.cpp gives.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "tokenizer/vocab_data.hpp"

namespace apr {

namespace gguf {
class File;
}

struct Vocab;
class BpeEncoder;
class SpmEncoder;
class SpecialTokenMatcher;

class Tokenizer {
 public:
  // Reads the tokenizer.ggml.* keys. Throws apr::Error on a missing or malformed vocabulary.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);
  // Throws apr::Error when the data is inconsistent (unknown model, no tokens, bad merges).
  static std::unique_ptr<Tokenizer> from_vocab(VocabData data);
  ~Tokenizer();

  // With add_special, BOS (and EOS) are added as tokenizer.ggml.add_bos_token (add_eos_token)
  // say, or by the model's default. With parse_special, control tokens written in the text are
  // recognised; user-defined tokens always are.
  std::vector<int32_t> encode(std::string_view text, bool add_special = true,
                              bool parse_special = true) const;

  // The text of a token sequence, bytes restored. SentencePiece models drop the space they put
  // in front of the first word. Control tokens are left out unless render_special.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  // The bytes one token contributes to streamed output, as llama.cpp's token_to_piece: control
  // and unknown tokens are empty unless render_special; no space is stripped. Out-of-range ids
  // give an empty piece.
  std::string token_to_piece(int32_t id, bool render_special = false) const;

  int32_t bos_id() const { return bos_id_; }  // -1 if none
  int32_t eos_id() const { return eos_id_; }  // -1 if none
  int32_t eot_id() const { return eot_id_; }  // -1 if none
  int32_t unk_id() const { return unk_id_; }  // -1 if none
  int32_t pad_id() const { return pad_id_; }  // -1 if none
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }

  // EOS, EOT, and tokens that end a turn by their text (<|im_end|>, <|endoftext|>, <|eot_id|>…).
  bool is_end_of_generation(int32_t id) const { return end_of_generation_.count(id) != 0; }

  size_t vocab_size() const;
  std::string_view model() const { return model_; }
  std::string_view pre() const { return pre_; }
  // The text of a token as the vocabulary stores it; empty for out-of-range ids.
  std::string_view token_text(int32_t id) const;
  int32_t token_type(int32_t id) const;  // TokenType; kTokenUndefined for out-of-range ids

 private:
  Tokenizer();

  std::string model_, pre_;
  bool is_spm_ = false;
  std::unique_ptr<Vocab> vocab_;
  std::unique_ptr<BpeEncoder> bpe_;
  std::unique_ptr<SpmEncoder> spm_;
  std::unique_ptr<SpecialTokenMatcher> specials_;
  int32_t bos_id_ = -1, eos_id_ = -1, eot_id_ = -1, unk_id_ = -1, pad_id_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  std::unordered_set<int32_t> end_of_generation_;
};

}  // namespace apr
