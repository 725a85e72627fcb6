// SPDX-License-Identifier: MIT
// Shared by the libFuzzer harnesses: a scratch file or directory per process, so the readers
// under test see real paths (they open, stat and map files), and the one exception type a
// malformed input may raise. Anything else escaping a harness (std::length_error,
// std::bad_alloc, a crash, a sanitizer report) is a finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace apr::fuzz {

// $TMPDIR/apr-fuzz-<name>-<pid>, removed and recreated empty on every call.
inline std::filesystem::path scratch_path(const std::string& name) {
  std::error_code ec;
  auto base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  return base / ("apr-fuzz-" + name + "-" + std::to_string(::getpid()));
}

inline void write_file(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) throw std::runtime_error("fuzz harness cannot write " + path.string());
}

}  // namespace apr::fuzz
