// SPDX-License-Identifier: MIT
// Writes GGUF bytes for tests, independently of the reader in core/gguf: a description of
// header, metadata and tensors that a test can bend into any malformed shape before encoding.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace apr_test {

// Little-endian byte sink.
class Bytes {
 public:
  std::vector<uint8_t> data;

  template <typename T>
  Bytes& put(T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    data.insert(data.end(), raw, raw + sizeof(T));
    return *this;
  }
  Bytes& u8(uint8_t v) { return put(v); }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    data.insert(data.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::vector<uint8_t>& bytes) {
    data.insert(data.end(), bytes.begin(), bytes.end());
    return *this;
  }
};

// GGUF value type ids (GGUF-FACTS §1.2).
enum : uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32v,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64
};

// One metadata pair: the key, the value type id and the encoded value that follows it.
struct KvSpec {
  std::string key;
  uint32_t type;
  std::vector<uint8_t> value;
};

template <typename T>
KvSpec kv(std::string key, uint32_t type, T v) {
  return {std::move(key), type, Bytes().put(v).data};
}

inline KvSpec kv_string(std::string key, std::string_view v) {
  return {std::move(key), kString, Bytes().str(v).data};
}

template <typename T>
KvSpec kv_array(std::string key, uint32_t elem_type, const std::vector<T>& v) {
  Bytes b;
  b.u32(elem_type).u64(v.size());
  for (const T& x : v) b.put(x);
  return {std::move(key), kArray, b.data};
}

inline KvSpec kv_string_array(std::string key, const std::vector<std::string>& v) {
  Bytes b;
  b.u32(kString).u64(v.size());
  for (const auto& s : v) b.str(s);
  return {std::move(key), kArray, b.data};
}

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> ne;  // n_dims = ne.size() unless n_dims is set
  uint32_t type;
  std::vector<uint8_t> data;
  std::optional<uint32_t> n_dims;
  std::optional<uint64_t> offset;  // default: packed in order, each aligned
};

struct GgufSpec {
  uint32_t magic = 0x46554747;
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count;  // default: tensors.size()
  std::optional<uint64_t> kv_count;      // default: kvs.size()
  std::vector<KvSpec> kvs;
  std::vector<TensorSpec> tensors;
  uint64_t alignment = 32;       // used to lay out data; write general.alignment yourself
  bool pad_last_tensor = false;  // false: the file ends at the last tensor byte

  std::vector<uint8_t> build() const {
    Bytes b;
    b.u32(magic).u32(version);
    b.u64(tensor_count.value_or(tensors.size()));
    b.u64(kv_count.value_or(kvs.size()));
    for (const KvSpec& k : kvs) b.str(k.key).u32(k.type).raw(k.value);
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const TensorSpec& t : tensors) {
      const uint64_t off = t.offset.value_or(next);
      offsets.push_back(off);
      next = align(off + t.data.size());
      b.str(t.name).u32(t.n_dims.value_or(uint32_t(t.ne.size())));
      for (uint64_t d : t.ne) b.u64(d);
      b.u32(t.type).u64(off);
    }
    if (tensors.empty()) return b.data;
    b.data.resize(align(b.data.size()), 0);
    const uint64_t data_start = b.data.size();
    uint64_t end = data_start;
    for (size_t i = 0; i < tensors.size(); ++i) {
      // Absurd offsets (tests of out-of-file data) are declared but their bytes not written.
      if (offsets[i] > kMaxWrittenOffset) continue;
      const uint64_t at = data_start + offsets[i];
      const uint64_t stop = at + tensors[i].data.size();
      if (b.data.size() < stop) b.data.resize(stop, 0);
      std::memcpy(b.data.data() + at, tensors[i].data.data(), tensors[i].data.size());
      end = std::max(end, stop);
    }
    b.data.resize(pad_last_tensor ? align(end) : end, 0);
    return b.data;
  }

  static constexpr uint64_t kMaxWrittenOffset = uint64_t(1) << 26;

  uint64_t align(uint64_t x) const { return x + (alignment - x % alignment) % alignment; }
};

// A file in the temp directory, removed when this goes out of scope.
class TempFile {
 public:
  explicit TempFile(const std::vector<uint8_t>& bytes, const std::string& stem = "apr_gguf_test") {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            (stem + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".gguf");
    std::ofstream out(path_, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace apr_test
