// SPDX-License-Identifier: MIT
// A whole file mapped read-only with POSIX mmap.
#pragma once

#include <cstdint>
#include <filesystem>

namespace apr::gguf {

class MappedFile {
 public:
  // Throws apr::Error if the file cannot be opened, is not a regular file, or cannot be mapped.
  // An empty file is "mapped" as zero bytes without calling mmap.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace apr::gguf
