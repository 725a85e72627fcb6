#include "trace/aprt.hpp"

#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

#include "common/error.hpp"
#include "trace/atomic_file.hpp"

namespace apr::trace {

namespace {

constexpr char kMagic[4] = {'A', 'P', 'R', 'T'};

void put_u32(std::byte* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = std::byte((v >> (8 * i)) & 0xFF);
}

uint32_t get_u32(const std::byte* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(in[i]) << (8 * i);
  return v;
}

}  // namespace

std::vector<std::byte> encode_aprt(uint32_t layer, std::span<const float> values) {
  if (values.size() > std::numeric_limits<uint32_t>::max())
    throw Error("tensor of " + std::to_string(values.size()) +
                " elements does not fit an APRT file (u32 element count)");
  std::vector<std::byte> out(kAprtHeaderBytes + values.size() * 4);
  std::memcpy(out.data(), kMagic, 4);
  put_u32(out.data() + 4, layer);
  put_u32(out.data() + 8, static_cast<uint32_t>(values.size()));
  std::byte* p = out.data() + kAprtHeaderBytes;
  for (float f : values) {
    put_u32(p, std::bit_cast<uint32_t>(f));
    p += 4;
  }
  return out;
}

void write_aprt(const std::filesystem::path& path, uint32_t layer, std::span<const float> values) {
  const auto bytes = encode_aprt(layer, values);
  write_file_atomically(path, bytes);
}

AprtTensor decode_aprt(std::span<const std::byte> bytes, const std::filesystem::path& origin) {
  const std::string where = origin.string();
  if (bytes.size() < kAprtHeaderBytes)
    throw Error(where + ": not an APRT file: " + std::to_string(bytes.size()) +
                " bytes, shorter than the 12-byte header");
  if (std::memcmp(bytes.data(), kMagic, 4) != 0)
    throw Error(where + ": not an APRT file: bad magic at byte offset 0 (expected \"APRT\")");
  AprtTensor t;
  t.layer = get_u32(bytes.data() + 4);
  const uint64_t count = get_u32(bytes.data() + 8);
  const uint64_t expected = kAprtHeaderBytes + count * 4;
  if (expected != bytes.size())
    throw Error(where + ": element count " + std::to_string(count) + " at byte offset 8 needs " +
                std::to_string(expected) + " bytes but the file has " +
                std::to_string(bytes.size()));
  t.values.resize(count);
  const std::byte* p = bytes.data() + kAprtHeaderBytes;
  for (uint64_t i = 0; i < count; ++i, p += 4) t.values[i] = std::bit_cast<float>(get_u32(p));
  return t;
}

AprtTensor read_aprt(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error(path.string() + ": is a directory, not an APRT file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open: " + std::strerror(errno));
  // Size-checked before reading so a huge bogus count never turns into a huge allocation.
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw Error(path.string() + ": cannot determine the file size");
  in.seekg(0);
  std::vector<std::byte> bytes(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error(path.string() + ": read failed");
  return decode_aprt(bytes, path);
}

}  // namespace apr::trace
