// SPDX-License-Identifier: MIT
// Hex encoding of arbitrary bytes, for test helper programs whose stdin/stdout lines carry texts
// that may hold newlines or invalid UTF-8 (tests/tokenizer/tokenize_cli,
// tests/chat/chat_render_cli).
#pragma once

#include <string>
#include <string_view>

namespace apr_test {

// Decodes lower- or upper-case hex into `out`; false (out unspecified) when `hex` is not hex.
inline bool from_hex(std::string_view hex, std::string& out) {
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return false;
  out.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
  }
  return true;
}

inline std::string to_hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    out += digits[static_cast<unsigned char>(c) >> 4];
    out += digits[static_cast<unsigned char>(c) & 15];
  }
  return out;
}

}  // namespace apr_test
