// SPDX-License-Identifier: MIT
#include "tokenizer/unicode.hpp"

#include <algorithm>
#include <span>

#include "tokenizer/unicode_tables.hpp"

namespace apr::unicode {
namespace {

bool in_ranges(std::span<const CodepointRange> ranges, uint32_t cp) {
  auto it =
      std::upper_bound(ranges.begin(), ranges.end(), cp,
                       [](uint32_t value, const CodepointRange& r) { return value < r.first; });
  return it != ranges.begin() && cp <= std::prev(it)->last;
}

// Decodes one well-formed sequence at text[pos]; returns its length, or 0 if the bytes there
// are not one (bad lead, truncated, overlong, surrogate or beyond U+10FFFF).
size_t decode_one(std::string_view text, size_t pos, uint32_t& cp) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  const unsigned char lead = byte(0);
  size_t length;
  uint32_t min_cp;
  if (lead < 0x80) {
    cp = lead;
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2, min_cp = 0x80, cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, min_cp = 0x800, cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, min_cp = 0x10000, cp = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() - pos < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i) & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return length;
}

}  // namespace

uint8_t classify(uint32_t cp) {
  uint8_t classes = kOther;
  if (in_ranges(letter_ranges(), cp)) classes |= kLetter;
  if (in_ranges(number_ranges(), cp)) classes |= kNumber;
  if (in_ranges(punctuation_ranges(), cp)) classes |= kPunctuation;
  if (in_ranges(whitespace_ranges(), cp)) classes |= kWhitespace;
  return classes;
}

std::vector<Char> decode_utf8(std::string_view text) {
  std::vector<Char> chars;
  chars.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = 0;
    const size_t length = decode_one(text, pos, cp);
    if (length == 0) {
      chars.push_back(
          {static_cast<unsigned char>(text[pos]), static_cast<uint32_t>(pos), 1, kOther});
      ++pos;
    } else {
      chars.push_back({cp, static_cast<uint32_t>(pos), static_cast<uint8_t>(length), classify(cp)});
      pos += length;
    }
  }
  return chars;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

size_t utf8_sequence_length(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

}  // namespace apr::unicode
