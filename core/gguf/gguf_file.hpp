// SPDX-License-Identifier: MIT
// Read-only, memory-mapped GGUF v2/v3 file: validated header, metadata and tensor directory.
//
// Everything a file declares is bounds-checked when it is opened; a malformed file throws
// apr::Error with one line naming the file, the record and the byte offset. Tensor types the
// engine cannot decode are listed, not rejected: that is the model loader's call.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace apr::gguf {

enum class ValueType : uint32_t {
  U8 = 0,
  I8,
  U16,
  I16,
  U32,
  I32,
  F32,
  BOOL,
  STRING,
  ARRAY,
  U64,
  I64,
  F64
};

// "u32", "string", ...; "type 13" for ids outside the enum.
std::string value_type_name(ValueType type);
// Bytes of one scalar of `type`; 0 for STRING and ARRAY, which have no fixed size.
uint64_t value_type_size(ValueType type);

struct TensorInfo {
  std::string name;
  uint32_t n_dims;
  uint64_t ne[4];        // ne[0] is the contiguous dimension; unused dims are 1
  uint32_t type;         // ggml type id
  uint64_t offset;       // relative to the start of the data section
  uint64_t file_offset;  // absolute
  uint64_t nbytes;
  uint64_t n_elements;
  const uint8_t* data;  // into the mapping; valid for the File's lifetime
};

// "[896, 151936]": the declared dims, ne[0] first.
std::string shape_string(const TensorInfo& tensor);

// One metadata pair as it sits in the mapping.
struct MetadataEntry {
  std::string_view key;
  ValueType type;
  ValueType element_type;  // arrays only
  uint64_t count;          // arrays only
  const uint8_t* value;    // the value's bytes (for arrays: the first element)
  uint64_t file_offset;    // of the key
};

class MappedFile;

class File {
 public:
  // Throws apr::Error when the file cannot be read or is not a valid GGUF v2/v3 file.
  static std::unique_ptr<File> open(const std::filesystem::path& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::filesystem::path& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;  // nullptr if absent

  bool has(std::string_view key) const { return find_entry(key) != nullptr; }
  std::optional<ValueType> type_of(std::string_view key) const;

  // Scalars: any integer width is accepted and range-checked; a wrong type throws apr::Error
  // naming the key and both types; an absent key gives std::nullopt.
  std::optional<uint64_t> get_uint(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // f32/f64, integers too
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string_view> get_string(std::string_view key) const;  // views into the map

  // Arrays: the element type is checked; std::nullopt if absent.
  std::optional<std::vector<std::string_view>> get_string_array(std::string_view key) const;
  std::optional<std::vector<double>> get_float_array(std::string_view key) const;  // f32/f64/ints
  std::optional<std::vector<int64_t>> get_int_array(std::string_view key) const;   // any int width
  std::optional<uint64_t> array_length(std::string_view key) const;

  // Every key in file order with a short printable rendering of its value (arrays: element type
  // and length plus the first few elements), for `apr info`.
  std::vector<std::pair<std::string, std::string>> metadata_summary() const;

  const std::vector<MetadataEntry>& metadata() const { return entries_; }
  const MetadataEntry* find_entry(std::string_view key) const;

 private:
  File() = default;
  friend class Parser;

  [[noreturn]] void fail_key(const MetadataEntry& entry, const std::string& what) const;
  const MetadataEntry* find_array(std::string_view key, const char* expected) const;

  std::filesystem::path path_;
  std::unique_ptr<MappedFile> map_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
  std::vector<MetadataEntry> entries_;
  std::unordered_map<std::string_view, size_t> entry_index_;
};

}  // namespace apr::gguf
