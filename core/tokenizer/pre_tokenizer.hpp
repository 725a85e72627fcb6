// SPDX-License-Identifier: MIT
// Splitting text into the pieces byte-level BPE merges within, as the regexes of the model's
// `tokenizer.ggml.pre` would, implemented by hand (std::regex has no \p{L}).
#pragma once

#include <string_view>
#include <vector>

namespace apr {

enum class PreTokenizer {
  kDefault,  // missing or "default" pre: llama.cpp's four chained default regexes
  kGpt2,     // "gpt-2": 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,   // "llama-bpe": contractions, [^\r\n\p{L}\p{N}]?\p{L}+, \p{N}{1,3}, ...
  kQwen2,    // "qwen2": as kLlama3 but \p{N} one digit at a time
  kDigitsThenGpt2,  // "smollm", "starcoder", ...: every digit alone, then the gpt-2 regex
  kTekken,  // "tekken" (Mistral Nemo, Small 3): letter runs split at case changes, \p{N} alone,
            // ...; as llama.cpp runs its regex, where \p{L} is only "a letter" (no \p{Lu}/\p{M})
};

// Throws apr::Error naming the value when it is not one of the supported pre-tokenizers.
PreTokenizer pre_tokenizer_from_name(std::string_view name);

// The pieces, in order; together they are exactly `text`. Bytes that are not valid UTF-8 are
// kept as single characters of no class.
std::vector<std::string_view> pre_tokenize(std::string_view text, PreTokenizer kind);

}  // namespace apr
