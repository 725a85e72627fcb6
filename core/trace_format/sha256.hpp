// SPDX-License-Identifier: MIT
// SHA-256 of a file, so a trace's manifest says exactly which model produced it.
#pragma once

#include <filesystem>
#include <string>

namespace apr::trace {

// Lowercase hex. Throws apr::Error when the file cannot be read.
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace apr::trace
