// SPDX-License-Identifier: MIT
// A tokenizer vocabulary as a GGUF file declares it (the `tokenizer.ggml.*` keys), independent of
// where it came from, so tokenizers can also be built from vocabularies made in memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace apr {

// Values of tokenizer.ggml.token_type.
enum TokenType : int32_t {
  kTokenUndefined = 0,
  kTokenNormal = 1,
  kTokenUnknown = 2,
  kTokenControl = 3,
  kTokenUserDefined = 4,
  kTokenUnused = 5,
  kTokenByte = 6,
};

struct VocabData {
  std::string model;                // tokenizer.ggml.model: "gpt2" or "llama"
  std::string pre;                  // tokenizer.ggml.pre; empty when absent
  std::string name;                 // general.name: llama.cpp keys some token attributes on it
  std::vector<std::string> tokens;  // id -> text
  std::vector<float> scores;        // empty, or one per token
  std::vector<int32_t> types;       // empty (all normal), or one TokenType per token
  std::vector<std::string> merges;  // "left right", rank = index (gpt2 only)
  std::optional<int64_t> bos_id, eos_id, unk_id, pad_id, eot_id;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
};

}  // namespace apr
