// SPDX-License-Identifier: MIT
// Reading the tokenizer.ggml.* keys of a GGUF file into a VocabData.
#pragma once

#include "tokenizer/vocab_data.hpp"

namespace apr {

namespace gguf {
class File;
}

// Throws apr::Error naming the file and the key when the vocabulary is missing or malformed.
VocabData vocab_from_gguf(const gguf::File& file);

}  // namespace apr
