// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "tokenizer/byte_level.hpp"
#include "tokenizer/unicode.hpp"

using namespace apr;

TEST_CASE("code point classes follow the Unicode general categories", "[tokenizer][unicode]") {
  using namespace apr::unicode;
  CHECK(classify('a') == kLetter);
  CHECK(classify(0x4E16) == kLetter);  // 世
  CHECK(classify(0x00E9) == kLetter);  // é
  CHECK(classify('7') == kNumber);
  CHECK(classify(0x0661) == kNumber);  // Arabic-Indic one
  CHECK(classify(0x2163) == kNumber);  // Roman numeral four (Nl)
  CHECK(classify(',') == kPunctuation);
  CHECK(classify(0x3002) == kPunctuation);  // ideographic full stop
  CHECK(classify('$') == kOther);           // Sc, not P
  CHECK(classify(0x0301) == kOther);        // combining acute (Mn)
  CHECK(classify(0x1F600) == kOther);       // emoji (So)
  for (uint32_t ws : {0x09u, 0x0Au, 0x0Du, 0x20u, 0x85u, 0xA0u, 0x2003u, 0x3000u}) {
    CHECK(classify(ws) == kWhitespace);
  }
  CHECK(classify(0x1C) == kOther);  // Python's isspace says yes; White_Space says no
  CHECK(classify(0x200B) == kOther);
}

TEST_CASE("UTF-8 decoding keeps invalid bytes as single characters", "[tokenizer][unicode]") {
  // valid 2-, 3- and 4-byte sequences, then: stray continuation, truncated 3-byte sequence,
  // overlong NUL, encoded surrogate, and a lone 0xFF at the end
  const std::string text =
      "\xC3\xA9\xE4\xB8\x96\xF0\x9F\x98\x80"
      "\x80"
      "\xE4\xB8"
      "a"
      "\xC0\x80"
      "\xED\xA0\x80"
      "\xFF";
  const auto chars = unicode::decode_utf8(text);
  std::vector<uint32_t> cps;
  std::vector<int> lengths;
  size_t covered = 0;
  for (const auto& c : chars) {
    CHECK(c.offset == covered);
    covered += c.length;
    cps.push_back(c.cp);
    lengths.push_back(c.length);
  }
  CHECK(covered == text.size());
  CHECK(cps == std::vector<uint32_t>{0xE9, 0x4E16, 0x1F600, 0x80, 0xE4, 0xB8, 'a', 0xC0, 0x80, 0xED,
                                     0xA0, 0x80, 0xFF});
  CHECK(lengths == std::vector<int>{2, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
  CHECK(chars[3].classes == unicode::kOther);
}

TEST_CASE("GPT-2 byte alphabet", "[tokenizer][unicode]") {
  CHECK(byte_level::byte_to_codepoint(' ') == 0x120);
  CHECK(byte_level::byte_to_codepoint('\n') == 0x10A);
  CHECK(byte_level::byte_to_codepoint('\t') == 0x109);
  CHECK(byte_level::byte_to_codepoint(0x00) == 0x100);
  CHECK(byte_level::byte_to_codepoint(0x7F) == 0x121);
  CHECK(byte_level::byte_to_codepoint(0xAD) == 0x143);
  CHECK(byte_level::byte_to_codepoint('A') == 'A');
  CHECK(byte_level::byte_to_codepoint(0xE9) == 0xE9);
  CHECK(byte_level::encode(" hi\n") == "\xC4\xA0hi\xC4\x8A");

  std::set<uint32_t> seen;
  std::string all;
  for (int b = 0; b < 256; ++b) {
    seen.insert(byte_level::byte_to_codepoint(static_cast<uint8_t>(b)));
    all += static_cast<char>(b);
  }
  CHECK(seen.size() == 256);
  CHECK(byte_level::decode(byte_level::encode(all)) == all);
  // Characters outside the alphabet pass through.
  CHECK(byte_level::decode("<|im_end|>\xE2\x96\x81") == "<|im_end|>\xE2\x96\x81");
}
