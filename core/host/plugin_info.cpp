// SPDX-License-Identifier: MIT
#include "host/plugin_info.hpp"

#include <cstdio>
#include <cstring>

#include "common/error.hpp"

namespace apr::host {

bool valid_backend_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  for (const char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

void check_backend_name(std::string_view name, std::string_view what) {
  if (!valid_backend_name(name))
    throw Error(std::string(what) + " '" + sanitized_message(std::string(name).c_str()) +
                "' is not 1-64 characters of [a-z0-9_-]");
}

void check_text(std::string_view text, size_t max_bytes, bool printable_ascii_only,
                std::string_view what) {
  if (text.size() > max_bytes)
    throw Error(std::string(what) + " is " + std::to_string(text.size()) +
                " bytes, more than the " + std::to_string(max_bytes) + " allowed");
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f || (printable_ascii_only && c > 0x7e)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      throw Error(std::string(what) + " holds byte " + hex + " at offset " + std::to_string(i) +
                  (printable_ascii_only ? " (want printable ASCII)" : " (a control character)"));
    }
  }
}

std::string bounded_string(const char* text, size_t max_bytes, std::string_view what) {
  if (!text) throw Error(std::string(what) + " is NULL");
  const size_t n = ::strnlen(text, max_bytes + 1);
  if (n > max_bytes)
    throw Error(std::string(what) + " is not a NUL-terminated string of at most " +
                std::to_string(max_bytes) + " bytes");
  return std::string(text, n);
}

std::string array_string(const char* array, size_t array_bytes, std::string_view what) {
  if (!std::memchr(array, '\0', array_bytes))
    throw Error(std::string(what) + " is not NUL-terminated within its " +
                std::to_string(array_bytes) + " bytes");
  return std::string(array);
}

std::string sanitized_message(const char* text) {
  if (!text) return "no message";
  std::string out(text, ::strnlen(text, kMaxMessageBytes));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  if (out.find_first_not_of(' ') == std::string::npos) return "no message";
  return out;
}

}  // namespace apr::host
