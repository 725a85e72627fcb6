// SPDX-License-Identifier: MIT
// Typed access to metadata values, the tensor lookup and the printable summary.
#include <charconv>
#include <cstring>
#include <limits>
#include <string>

#include "common/error.hpp"
#include "gguf/gguf_file.hpp"
#include "gguf/mapped_file.hpp"

namespace apr::gguf {
namespace {

constexpr size_t kSummaryArrayElements = 4;
constexpr size_t kSummaryStringBytes = 80;
constexpr size_t kSummaryElementBytes = 24;

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

bool is_integer(ValueType t) {
  switch (t) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::U16:
    case ValueType::I16:
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::U64:
    case ValueType::I64:
      return true;
    default:
      return false;
  }
}

bool is_float(ValueType t) {
  return t == ValueType::F32 || t == ValueType::F64;
}

// An integer of any width, widened without loss: negative values keep their sign.
struct Integer {
  bool negative;
  uint64_t magnitude_or_value;  // the value itself when not negative
  int64_t signed_value;
};

Integer load_integer(ValueType t, const uint8_t* p) {
  int64_t s = 0;
  switch (t) {
    case ValueType::U8:
      return {false, load<uint8_t>(p), 0};
    case ValueType::U16:
      return {false, load<uint16_t>(p), 0};
    case ValueType::U32:
      return {false, load<uint32_t>(p), 0};
    case ValueType::U64:
      return {false, load<uint64_t>(p), 0};
    case ValueType::I8:
      s = load<int8_t>(p);
      break;
    case ValueType::I16:
      s = load<int16_t>(p);
      break;
    case ValueType::I32:
      s = load<int32_t>(p);
      break;
    default:
      s = load<int64_t>(p);
      break;
  }
  return {s < 0, s < 0 ? 0 : uint64_t(s), s};
}

double load_number(ValueType t, const uint8_t* p) {
  if (t == ValueType::F32) return load<float>(p);
  if (t == ValueType::F64) return load<double>(p);
  const Integer v = load_integer(t, p);
  return v.negative ? double(v.signed_value) : double(v.magnitude_or_value);
}

std::string_view load_string(const uint8_t*& p) {
  const uint64_t len = load<uint64_t>(p);
  std::string_view s(reinterpret_cast<const char*>(p + 8), len);
  p += 8 + len;
  return s;
}

std::string quoted(std::string_view s, size_t limit) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      static const char* digits = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 15];
    } else {
      out += char(c);  // UTF-8 bytes pass through
    }
  }
  out += s.size() > limit ? "\"..." : "\"";
  return out;
}

template <typename T>
std::string shortest(T v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string render_scalar(ValueType t, const uint8_t* p, size_t string_limit) {
  if (t == ValueType::STRING) return quoted(load_string(p), string_limit);
  if (t == ValueType::BOOL) return *p ? "true" : "false";
  if (t == ValueType::F32) return shortest(load<float>(p));
  if (t == ValueType::F64) return shortest(load<double>(p));
  const Integer v = load_integer(t, p);
  return v.negative ? std::to_string(v.signed_value) : std::to_string(v.magnitude_or_value);
}

}  // namespace

std::string value_type_name(ValueType type) {
  static const char* const names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  const auto id = uint32_t(type);
  return id < 13 ? names[id] : "type " + std::to_string(id);
}

std::string shape_string(const TensorInfo& tensor) {
  std::string s = "[";
  for (uint32_t d = 0; d < tensor.n_dims && d < 4; ++d) {
    if (d) s += ", ";
    s += std::to_string(tensor.ne[d]);
  }
  return s + "]";
}

File::~File() = default;

uint64_t File::file_size() const {
  return map_->size();
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const MetadataEntry* File::find_entry(std::string_view key) const {
  const auto it = entry_index_.find(key);
  return it == entry_index_.end() ? nullptr : &entries_[it->second];
}

std::optional<ValueType> File::type_of(std::string_view key) const {
  const MetadataEntry* e = find_entry(key);
  if (!e) return std::nullopt;
  return e->type;
}

void File::fail_key(const MetadataEntry& entry, const std::string& what) const {
  throw Error(path_.string() + ": metadata key '" + std::string(entry.key) + "' " + what +
              " (byte offset " + std::to_string(entry.file_offset) + ")");
}

std::optional<uint64_t> File::get_uint(std::string_view key) const {
  const MetadataEntry* e = find_entry(key);
  if (!e) return std::nullopt;
  if (!is_integer(e->type)) {
    fail_key(*e, "has type " + value_type_name(e->type) + ", expected an unsigned integer");
  }
  const Integer v = load_integer(e->type, e->value);
  if (v.negative) {
    fail_key(*e, "value " + std::to_string(v.signed_value) + " is negative, expected unsigned");
  }
  return v.magnitude_or_value;
}

std::optional<int64_t> File::get_int(std::string_view key) const {
  const MetadataEntry* e = find_entry(key);
  if (!e) return std::nullopt;
  if (!is_integer(e->type)) {
    fail_key(*e, "has type " + value_type_name(e->type) + ", expected an integer");
  }
  const Integer v = load_integer(e->type, e->value);
  if (v.negative) return v.signed_value;
  if (v.magnitude_or_value > uint64_t(std::numeric_limits<int64_t>::max())) {
    fail_key(*e, "value " + std::to_string(v.magnitude_or_value) + " does not fit in i64");
  }
  return int64_t(v.magnitude_or_value);
}

std::optional<double> File::get_float(std::string_view key) const {
  const MetadataEntry* e = find_entry(key);
  if (!e) return std::nullopt;
  if (!is_float(e->type) && !is_integer(e->type)) {
    fail_key(*e, "has type " + value_type_name(e->type) + ", expected a number");
  }
  return load_number(e->type, e->value);
}

std::optional<bool> File::get_bool(std::string_view key) const {
  const MetadataEntry* e = find_entry(key);
  if (!e) return std::nullopt;
  if (e->type != ValueType::BOOL) {
    fail_key(*e, "has type " + value_type_name(e->type) + ", expected bool");
  }
  return *e->value != 0;  // any nonzero byte is true, as in llama.cpp
}

std::optional<std::string_view> File::get_string(std::string_view key) const {
  const MetadataEntry* e = find_entry(key);
  if (!e) return std::nullopt;
  if (e->type != ValueType::STRING) {
    fail_key(*e, "has type " + value_type_name(e->type) + ", expected string");
  }
  const uint8_t* p = e->value;
  return load_string(p);
}

const MetadataEntry* File::find_array(std::string_view key, const char* expected) const {
  const MetadataEntry* e = find_entry(key);
  if (e && e->type != ValueType::ARRAY) {
    fail_key(*e, "has type " + value_type_name(e->type) + ", expected an array of " + expected);
  }
  return e;
}

std::optional<std::vector<std::string_view>> File::get_string_array(std::string_view key) const {
  const MetadataEntry* e = find_array(key, "string");
  if (!e) return std::nullopt;
  if (e->element_type != ValueType::STRING) {
    fail_key(
        *e, "is an array of " + value_type_name(e->element_type) + ", expected an array of string");
  }
  std::vector<std::string_view> out;
  out.reserve(e->count);
  const uint8_t* p = e->value;
  for (uint64_t i = 0; i < e->count; ++i) out.push_back(load_string(p));
  return out;
}

std::optional<std::vector<double>> File::get_float_array(std::string_view key) const {
  const MetadataEntry* e = find_array(key, "numbers");
  if (!e) return std::nullopt;
  if (!is_float(e->element_type) && !is_integer(e->element_type)) {
    fail_key(*e, "is an array of " + value_type_name(e->element_type) +
                     ", expected an array of numbers");
  }
  std::vector<double> out(e->count);
  const uint64_t size = value_type_size(e->element_type);
  for (uint64_t i = 0; i < e->count; ++i)
    out[i] = load_number(e->element_type, e->value + i * size);
  return out;
}

std::optional<std::vector<int64_t>> File::get_int_array(std::string_view key) const {
  const MetadataEntry* e = find_array(key, "integers");
  if (!e) return std::nullopt;
  if (!is_integer(e->element_type)) {
    fail_key(*e, "is an array of " + value_type_name(e->element_type) +
                     ", expected an array of integers");
  }
  std::vector<int64_t> out(e->count);
  const uint64_t size = value_type_size(e->element_type);
  for (uint64_t i = 0; i < e->count; ++i) {
    const Integer v = load_integer(e->element_type, e->value + i * size);
    if (!v.negative && v.magnitude_or_value > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail_key(*e, "element " + std::to_string(i) + " = " + std::to_string(v.magnitude_or_value) +
                       " does not fit in i64");
    }
    out[i] = v.negative ? v.signed_value : int64_t(v.magnitude_or_value);
  }
  return out;
}

std::optional<uint64_t> File::array_length(std::string_view key) const {
  const MetadataEntry* e = find_array(key, "anything");
  if (!e) return std::nullopt;
  return e->count;
}

std::vector<std::pair<std::string, std::string>> File::metadata_summary() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(entries_.size());
  for (const MetadataEntry& e : entries_) {
    std::string text;
    if (e.type != ValueType::ARRAY) {
      text = render_scalar(e.type, e.value, kSummaryStringBytes);
    } else {
      text = value_type_name(e.element_type) + "[" + std::to_string(e.count) + "] [";
      const uint8_t* p = e.value;
      for (uint64_t i = 0; i < e.count && i < kSummaryArrayElements; ++i) {
        if (i) text += ", ";
        text += render_scalar(e.element_type, p, kSummaryElementBytes);
        if (e.element_type == ValueType::STRING) {
          load_string(p);
        } else {
          p += value_type_size(e.element_type);
        }
      }
      text += e.count > kSummaryArrayElements ? ", ...]" : "]";
    }
    out.emplace_back(std::string(e.key), std::move(text));
  }
  return out;
}

}  // namespace apr::gguf
