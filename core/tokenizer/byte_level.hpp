// SPDX-License-Identifier: MIT
// The GPT-2 byte-level alphabet: every byte maps to one printable code point, so that any byte
// string can be written as text in a BPE vocabulary and merged like text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace apr::byte_level {

uint32_t byte_to_codepoint(uint8_t byte);

// Each byte of `bytes` as the UTF-8 of its alphabet code point.
std::string encode(std::string_view bytes);

// The inverse of encode. Characters outside the alphabet (added tokens may contain them) are
// copied unchanged.
std::string decode(std::string_view text);

}  // namespace apr::byte_level
