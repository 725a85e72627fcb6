// SPDX-License-Identifier: MIT
#include "tokenizer/byte_level.hpp"

#include <array>

#include "tokenizer/unicode.hpp"

namespace apr::byte_level {
namespace {

// Printable bytes stand for themselves; the 68 others (controls, space, DEL, NBSP, soft hyphen)
// are moved, in increasing order, to U+0100 onwards.
struct Alphabet {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};  // every alphabet code point is below U+0144

  Alphabet() {
    from_cp.fill(-1);
    uint32_t next_moved = 0x100;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable =
          (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? b : next_moved++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet instance;
  return instance;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t byte) {
  return alphabet().to_cp[byte];
}

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) unicode::append_utf8(out, alphabet().to_cp[static_cast<uint8_t>(c)]);
  return out;
}

std::string decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const unicode::Char& ch : unicode::decode_utf8(text)) {
    const bool in_alphabet = ch.length > 1 || ch.cp < 0x80;  // a stray byte is never a member
    if (in_alphabet && ch.cp < alphabet().from_cp.size() && alphabet().from_cp[ch.cp] >= 0) {
      out += static_cast<char>(alphabet().from_cp[ch.cp]);
    } else {
      out.append(text.substr(ch.offset, ch.length));
    }
  }
  return out;
}

}  // namespace apr::byte_level
