// SPDX-License-Identifier: MIT
// UTF-8 decoding that never fails, and the code point classes the pre-tokenizers need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace apr::unicode {

enum CharClass : uint8_t {
  kOther = 0,
  kLetter = 1 << 0,       // \p{L}
  kNumber = 1 << 1,       // \p{N}
  kPunctuation = 1 << 2,  // \p{P}
  kWhitespace = 1 << 3,   // \s
};

// A bitwise OR of CharClass values.
uint8_t classify(uint32_t cp);

// One character of input: a well-formed UTF-8 sequence, or a single byte that does not start
// one. Stray bytes are kept as they are (class kOther) so that no input is lost or rejected.
struct Char {
  uint32_t cp;      // the code point; for a stray byte, the byte value
  uint32_t offset;  // byte offset in the text
  uint8_t length;   // bytes
  uint8_t classes;  // CharClass bits; always kOther for a stray byte
};

std::vector<Char> decode_utf8(std::string_view text);

void append_utf8(std::string& out, uint32_t cp);

// Length of the sequence a lead byte announces (1 for continuation bytes), without validating
// what follows: this is how SentencePiece splits text into symbols.
size_t utf8_sequence_length(unsigned char lead);

}  // namespace apr::unicode
