// SPDX-License-Identifier: MIT
// APRT tensor files, byte-compatible with aprender's `apr trace --save-tensor`: the 4 bytes
// "APRT", the layer as u32 LE (APR_LAYER_NONE for whole-model stages), the element count as
// u32 LE, then that many f32 LE values, row-major. Values travel as raw bits, so NaN payloads
// and signed zeros survive a round trip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace apr::trace {

constexpr size_t kAprtHeaderBytes = 12;

struct AprtTensor {
  uint32_t layer = 0;
  std::vector<float> values;
};

// The file's bytes. Throws apr::Error when the count does not fit the u32 field.
std::vector<std::byte> encode_aprt(uint32_t layer, std::span<const float> values);

// Writes the file atomically (see atomic_file.hpp).
void write_aprt(const std::filesystem::path& path, uint32_t layer, std::span<const float> values);

// Throws apr::Error naming the file and byte offset when the bytes are not a well-formed APRT
// file (bad magic, truncated header, count that disagrees with the size).
AprtTensor decode_aprt(std::span<const std::byte> bytes, const std::filesystem::path& origin);

struct AprtHeader {
  uint32_t layer = 0;
  uint64_t count = 0;
};

// Both refuse anything but a regular file (a FIFO is refused at once, never waited on) and
// check the header against the file size before reading any data. The header alone is what a
// manifest is checked against.
AprtHeader read_aprt_header(const std::filesystem::path& path);
AprtTensor read_aprt(const std::filesystem::path& path);

}  // namespace apr::trace
