// SPDX-License-Identifier: MIT
// Writes a whole file so that a reader sees either the old file, or none, or the complete new
// one: the bytes go to a temporary file in the same directory, are flushed to disk, and the
// temporary is renamed over the target.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace apr::trace {

// Throws apr::Error naming the path and the system's reason (disk full, permission denied, ...);
// on failure no file named `path` is created and no temporary is left behind.
void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes);

// Test seam: while set, the next writes fail after `bytes_before_failure` bytes as if the disk
// were full.
void simulate_disk_full_for_testing(bool enabled, size_t bytes_before_failure = 0);

}  // namespace apr::trace
