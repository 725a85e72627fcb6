// SPDX-License-Identifier: MIT
#include "trace_format/aprt.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

#include "common/error.hpp"
#include "trace_format/atomic_file.hpp"

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

namespace {

// An open, regular file; closed on destruction.
class Fd {
 public:
  explicit Fd(const std::filesystem::path& path) {
    // O_NONBLOCK: a FIFO or device given by mistake must be refused, not waited on.
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd_ < 0) throw Error(path.string() + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      const int err = errno;
      ::close(fd_);
      throw Error(path.string() + ": cannot stat: " + std::strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd_);
      throw Error(path.string() + ": is a directory, not an APRT file");
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw Error(path.string() +
                  ": not a regular file (a FIFO, socket or device), not an APRT file");
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~Fd() { ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  uint64_t size() const { return size_; }

  // Reads exactly n bytes from the current position.
  void read_exactly(std::byte* out, size_t n, const std::filesystem::path& path) const {
    size_t done = 0;
    while (done < n) {
      const ssize_t got = ::read(fd_, out + done, n - done);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw Error(path.string() + ": read failed: " + std::strerror(errno));
      if (got == 0)
        throw Error(path.string() + ": the file shrank while it was read (" + std::to_string(done) +
                    " of " + std::to_string(n) + " bytes)");
      done += static_cast<size_t>(got);
    }
  }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

AprtHeader check_header(std::span<const std::byte> head, uint64_t file_size,
                        const std::filesystem::path& origin) {
  const std::string where = origin.string();
  if (file_size < kAprtHeaderBytes)
    throw Error(where + ": not an APRT file: " + std::to_string(file_size) +
                " bytes, shorter than the 12-byte header");
  if (std::memcmp(head.data(), kMagic, 4) != 0)
    throw Error(where + ": not an APRT file: bad magic at byte offset 0 (expected \"APRT\")");
  AprtHeader h;
  h.layer = get_u32(head.data() + 4);
  h.count = get_u32(head.data() + 8);
  const uint64_t expected = kAprtHeaderBytes + h.count * 4;
  if (expected != file_size)
    throw Error(where + ": element count " + std::to_string(h.count) + " at byte offset 8 needs " +
                std::to_string(expected) + " bytes but the file has " + std::to_string(file_size));
  return h;
}

}  // namespace

AprtHeader read_aprt_header(const std::filesystem::path& path) {
  const Fd fd(path);
  std::byte head[kAprtHeaderBytes];
  if (fd.size() >= kAprtHeaderBytes) fd.read_exactly(head, kAprtHeaderBytes, path);
  return check_header(head, fd.size(), path);
}

AprtTensor read_aprt(const std::filesystem::path& path) {
  const Fd fd(path);
  // The header is checked against the file size before anything else is read, so a huge file
  // or a bogus count never turns into a huge read or allocation.
  std::byte head[kAprtHeaderBytes];
  if (fd.size() >= kAprtHeaderBytes) fd.read_exactly(head, kAprtHeaderBytes, path);
  const AprtHeader h = check_header(head, fd.size(), path);
  AprtTensor t;
  t.layer = h.layer;
  t.values.resize(h.count);
  static_assert(sizeof(float) == 4 && std::endian::native == std::endian::little,
                "APRT is little endian; this reader copies the values as they are");
  fd.read_exactly(reinterpret_cast<std::byte*>(t.values.data()), h.count * 4, path);
  return t;
}

}  // namespace apr::trace
