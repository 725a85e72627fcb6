// SPDX-License-Identifier: MIT
// Parsing and validation of the GGUF header, metadata and tensor directory (GGUF-FACTS §1).
// Every count, length and offset is checked against the bytes that remain before it is used, so
// no malformed file can make the reader allocate absurdly or read outside the mapping.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <unordered_set>

#include "common/error.hpp"
#include "gguf/gguf_file.hpp"
#include "gguf/mapped_file.hpp"
#include "quant/types.hpp"

namespace apr::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kMaxStringLength = uint64_t(1) << 30;
constexpr uint64_t kMaxArrayElements = uint64_t(1) << 30;
constexpr uint64_t kMaxNameLength = 63;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kDefaultAlignment = 32;
// Counts are only bounded by the file size, so do not trust them for up-front allocation.
constexpr uint64_t kReserveLimit = 4096;
// Smallest encodings, used to reject counts that the remaining bytes cannot possibly hold:
// a key/value pair is a 1-byte key (8 + 1), a type (4) and a 1-byte value; a tensor info is an
// empty name (8), n_dims (4), a type (4) and an offset (8).
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;

}  // namespace

uint64_t value_type_size(ValueType type) {
  switch (type) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::BOOL:
      return 1;
    case ValueType::U16:
    case ValueType::I16:
      return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32:
      return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64:
      return 8;
    default:
      return 0;  // STRING and ARRAY have no fixed size
  }
}

class Parser {
 public:
  Parser(File& file, const uint8_t* data, uint64_t size)
      : file_(file), data_(data), size_(size), name_(file.path_.string()) {}

  void parse() {
    parse_header();
    parse_metadata();
    parse_alignment();
    parse_tensor_infos();
    place_tensors();
  }

 private:
  [[noreturn]] void fail(const std::string& what, uint64_t offset) const {
    throw Error(name_ + ": " + what + " (byte offset " + std::to_string(offset) + ")");
  }

  uint64_t left() const { return size_ - pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > left()) {
      throw Error(name_ + ": truncated: " + what + " at byte offset " + std::to_string(pos_) +
                  " needs " + std::to_string(n) + " bytes but the file has " +
                  std::to_string(size_));
    }
  }

  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string_view read_string(const std::string& what) {
    const uint64_t at = pos_;
    const uint64_t len = read<uint64_t>(what + " length");
    if (len > kMaxStringLength) {
      fail(what + ": string length " + std::to_string(len) + " exceeds the 1 GiB limit", at);
    }
    if (len > left()) {
      fail(what + ": string of " + std::to_string(len) + " bytes runs past the end of the file (" +
               std::to_string(size_) + " bytes)",
           at);
    }
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

  // Whether the string at pos_ (whose length field is known to be in the file) is valid.
  bool string_fits() const {
    uint64_t len;
    std::memcpy(&len, data_ + pos_, 8);
    return len <= kMaxStringLength && len <= left() - 8;
  }

  void skip_string() {
    uint64_t len;
    std::memcpy(&len, data_ + pos_, 8);
    pos_ += 8 + len;
  }

  void parse_header() {
    if (size_ < 4) {
      throw Error(name_ + ": not a GGUF file: only " + std::to_string(size_) + " bytes");
    }
    const uint32_t magic = read<uint32_t>("magic");
    if (magic != kMagic) {
      char hex[32];
      std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", data_[0], data_[1], data_[2], data_[3]);
      throw Error(name_ + ": not a GGUF file: bad magic " + hex + " (expected 47 47 55 46)");
    }
    const uint64_t version_at = pos_;
    const uint32_t version = read<uint32_t>("version");
    if (version != 0 && (version & 0xffff) == 0) {
      fail("byte-swapped version 0x" + hex32(version) + ": big-endian GGUF files are not supported",
           version_at);
    }
    if (version == 1) fail("GGUF version 1 is not supported (only versions 2 and 3)", version_at);
    if (version != 2 && version != 3) {
      fail("unsupported GGUF version " + std::to_string(version) + " (only versions 2 and 3)",
           version_at);
    }
    file_.version_ = version;
    const uint64_t counts_at = pos_;
    tensor_count_ = read<uint64_t>("tensor count");
    kv_count_ = read<uint64_t>("metadata count");
    if (tensor_count_ > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail("tensor count is negative", counts_at);
    }
    if (kv_count_ > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail("metadata count is negative", counts_at + 8);
    }
    if (kv_count_ > left() / kMinKvBytes || tensor_count_ > left() / kMinTensorInfoBytes ||
        kv_count_ * kMinKvBytes + tensor_count_ * kMinTensorInfoBytes > left()) {
      fail("absurd counts: " + std::to_string(tensor_count_) + " tensors and " +
               std::to_string(kv_count_) + " metadata pairs cannot fit in the " +
               std::to_string(left()) + " bytes that follow",
           counts_at);
    }
  }

  static std::string hex32(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", v);
    return buf;
  }

  ValueType read_value_type(const std::string& what) {
    const uint64_t at = pos_;
    const uint32_t t = read<uint32_t>(what);
    if (t > uint32_t(ValueType::F64)) {
      fail(what + " " + std::to_string(t) + " is not a GGUF value type", at);
    }
    return ValueType(t);
  }

  // Skips one value of a non-array type, checking that it lies inside the file.
  void skip_value(ValueType type, const std::string& what) {
    if (type == ValueType::STRING) {
      read_string(what);
      return;
    }
    const uint64_t n = value_type_size(type);
    need(n, what);
    pos_ += n;
  }

  void parse_metadata() {
    file_.entries_.reserve(std::min<uint64_t>(kv_count_, kReserveLimit));
    for (uint64_t i = 0; i < kv_count_; ++i) {
      const uint64_t at = pos_;
      const std::string where = "metadata #" + std::to_string(i);
      const std::string_view key = read_string(where + " key");
      if (key.empty()) fail(where + ": empty key", at);
      const std::string named = where + " '" + std::string(key) + "'";
      if (file_.entry_index_.count(key)) fail(named + ": duplicate key", at);

      MetadataEntry entry{key, ValueType::U8, ValueType::U8, 0, nullptr, at};
      entry.type = read_value_type(named + ": value type");
      if (entry.type == ValueType::ARRAY) {
        const uint64_t elem_at = pos_;
        entry.element_type = read_value_type(named + ": array element type");
        if (entry.element_type == ValueType::ARRAY) {
          fail(named + ": nested arrays are not supported", elem_at);
        }
        const uint64_t count_at = pos_;
        entry.count = read<uint64_t>(named + ": array length");
        if (entry.count > kMaxArrayElements) {
          fail(named + ": array length " + std::to_string(entry.count) +
                   " exceeds the limit of 2^30 elements",
               count_at);
        }
        entry.value = data_ + pos_;
        if (entry.element_type == ValueType::STRING) {
          for (uint64_t j = 0; j < entry.count; ++j) {
            // Vocabularies hold ~10^5 strings: describe an element only when it is bad.
            if (left() >= 8 && string_fits()) {
              skip_string();
            } else {
              read_string(named + " element " + std::to_string(j));  // throws the description
            }
          }
        } else {
          const uint64_t elem_size = value_type_size(entry.element_type);
          if (entry.count > left() / elem_size) {
            fail(named + ": array of " + std::to_string(entry.count) + " " +
                     value_type_name(entry.element_type) + " runs past the end of the file (" +
                     std::to_string(size_) + " bytes)",
                 count_at);
          }
          pos_ += entry.count * elem_size;
        }
      } else {
        entry.value = data_ + pos_;
        skip_value(entry.type, named + " value");
      }
      file_.entry_index_.emplace(key, file_.entries_.size());
      file_.entries_.push_back(entry);
    }
  }

  void parse_alignment() {
    const MetadataEntry* entry = file_.find_entry("general.alignment");
    if (!entry) {
      file_.alignment_ = kDefaultAlignment;
      return;
    }
    const uint64_t at = entry->file_offset;
    if (entry->type != ValueType::U32) {
      fail("general.alignment has type " + value_type_name(entry->type) + ", expected u32", at);
    }
    uint32_t alignment;
    std::memcpy(&alignment, entry->value, 4);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      fail("general.alignment " + std::to_string(alignment) + " is not a power of two", at);
    }
    file_.alignment_ = alignment;
  }

  void parse_tensor_infos() {
    file_.tensors_.reserve(std::min<uint64_t>(tensor_count_, kReserveLimit));
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      const uint64_t at = pos_;
      std::string where = "tensor info #" + std::to_string(i);
      const std::string_view name = read_string(where + " name");
      where += " '" + std::string(name) + "'";
      if (name.size() > kMaxNameLength) {
        fail(where + ": name of " + std::to_string(name.size()) + " bytes exceeds " +
                 std::to_string(kMaxNameLength),
             at);
      }
      TensorInfo t{};
      t.name = std::string(name);
      const uint64_t dims_at = pos_;
      t.n_dims = read<uint32_t>(where + ": n_dims");
      if (t.n_dims > kMaxDims) {
        fail(
            where + ": n_dims " + std::to_string(t.n_dims) + " exceeds " + std::to_string(kMaxDims),
            dims_at);
      }
      uint64_t n_elements = 1;
      for (uint32_t d = 0; d < kMaxDims; ++d) {
        t.ne[d] = 1;
        if (d >= t.n_dims) continue;
        const uint64_t ne_at = pos_;
        t.ne[d] = read<uint64_t>(where + ": ne[" + std::to_string(d) + "]");
        constexpr uint64_t kMax = uint64_t(std::numeric_limits<int64_t>::max());
        if (t.ne[d] > kMax) fail(where + ": ne[" + std::to_string(d) + "] is negative", ne_at);
        if (t.ne[d] != 0 && n_elements > kMax / t.ne[d]) {
          fail(where + ": element count overflows", ne_at);
        }
        n_elements *= t.ne[d];
      }
      t.n_elements = n_elements;
      const uint64_t type_at = pos_;
      t.type = read<uint32_t>(where + ": type");
      const quant::TypeInfo* info = quant::type_info(t.type);
      if (!info) {
        fail(where + ": type id " + std::to_string(t.type) + " is not a valid ggml type", type_at);
      }
      if (t.ne[0] % info->block_size != 0) {
        fail(where + ": ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                 info->name + " block size " + std::to_string(info->block_size),
             dims_at);
      }
      // Row bytes times rows, each step guarded; the result must fit in size_t as well.
      const uint64_t blocks = t.ne[0] / info->block_size;
      if (blocks > std::numeric_limits<uint64_t>::max() / info->type_size) {
        fail(where + ": byte size overflows", dims_at);
      }
      const uint64_t row = blocks * info->type_size;
      const uint64_t rows = t.ne[0] == 0 ? 0 : n_elements / t.ne[0];
      if (rows != 0 && row > std::numeric_limits<uint64_t>::max() / rows) {
        fail(where + ": byte size overflows", dims_at);
      }
      t.nbytes = row * rows;
      if (t.nbytes > std::numeric_limits<size_t>::max()) {
        fail(where + ": byte size overflows", dims_at);
      }
      const uint64_t offset_at = pos_;
      t.offset = read<uint64_t>(where + ": offset");
      if (t.offset % file_.alignment_ != 0) {
        fail(where + ": data offset " + std::to_string(t.offset) +
                 " is not a multiple of the alignment " + std::to_string(file_.alignment_),
             offset_at);
      }
      if (!names_.insert(t.name).second) fail(where + ": duplicate tensor name", at);
      file_.tensors_.push_back(std::move(t));
    }
  }

  void place_tensors() {
    const uint64_t a = file_.alignment_;
    file_.data_offset_ = tensor_count_ == 0 ? pos_ : pos_ + (a - pos_ % a) % a;
    const uint64_t data_start = file_.data_offset_;
    for (size_t i = 0; i < file_.tensors_.size(); ++i) {
      TensorInfo& t = file_.tensors_[i];
      // offset <= 2^64 - 1 and data_start <= file size: compare without overflowing.
      const uint64_t room = size_ >= data_start ? size_ - data_start : 0;
      if (t.offset > room || t.nbytes > room - t.offset) {
        uint64_t end = 0;
        const bool beyond = __builtin_add_overflow(data_start, t.offset, &end) ||
                            __builtin_add_overflow(end, t.nbytes, &end);
        throw Error(name_ + ": truncated: tensor '" + t.name + "' data ends at byte " +
                    (beyond ? std::string("beyond 2^64") : std::to_string(end)) +
                    " but the file has " + std::to_string(size_));
      }
      t.file_offset = data_start + t.offset;
      // A zero-byte tensor may sit at the very end; keep its pointer inside the mapping.
      t.data = data_ + std::min(t.file_offset, size_);
    }
    // Any layout is accepted as long as no two tensors share bytes.
    std::vector<size_t> order(file_.tensors_.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
      return file_.tensors_[x].offset < file_.tensors_[y].offset;
    });
    const TensorInfo* furthest = nullptr;
    for (size_t i : order) {
      const TensorInfo& t = file_.tensors_[i];
      if (t.nbytes == 0) continue;
      if (furthest && furthest->offset + furthest->nbytes > t.offset) {
        fail("tensors '" + furthest->name + "' and '" + t.name + "' overlap in the data section",
             t.file_offset);
      }
      if (!furthest || t.offset + t.nbytes > furthest->offset + furthest->nbytes) furthest = &t;
    }
    for (size_t i = 0; i < file_.tensors_.size(); ++i) {
      file_.tensor_index_.emplace(file_.tensors_[i].name, i);
    }
  }

  File& file_;
  const uint8_t* data_;
  uint64_t size_;
  std::string name_;
  uint64_t pos_ = 0;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  std::unordered_set<std::string> names_;
};

std::unique_ptr<File> File::open(const std::filesystem::path& path) {
  std::unique_ptr<File> file(new File());
  file->path_ = path;
  file->map_ = std::make_unique<MappedFile>(path);
  Parser(*file, file->map_->data(), file->map_->size()).parse();
  return file;
}

}  // namespace apr::gguf
