// SPDX-License-Identifier: MIT
// Cross-check with gguf-py: a file written by GGUFWriter must read back with the keys, values,
// tensor names, shapes, types and offsets that gguf-py's own GGUFReader reports.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <unistd.h>

#include "gguf/gguf_file.hpp"

using apr::gguf::File;
using apr::gguf::ValueType;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::string unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += char(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

bool is_int_type(int t) {
  return t <= 5 || t == 10 || t == 11;
}

}  // namespace

TEST_CASE("a gguf-py written file reads back as gguf-py's reader sees it", "[gguf][python]") {
  const auto dir = std::filesystem::temp_directory_path();
  const auto gguf_path = dir / ("apr_gguf_py_" + std::to_string(::getpid()) + ".gguf");
  const auto manifest_path = dir / ("apr_gguf_py_" + std::to_string(::getpid()) + ".manifest");
  const std::string cmd = std::string("\"") + APR_TEST_PYTHON + "\" \"" + APR_GGUF_PY_SCRIPT +
                          "\" \"" + gguf_path.string() + "\" \"" + manifest_path.string() + "\"";
  REQUIRE(std::system(cmd.c_str()) == 0);

  const auto f = File::open(gguf_path);
  std::ifstream in(manifest_path);
  std::string line;
  size_t kv_index = 0, tensor_index = 0;
  uint64_t kv_count = 0, tensor_count = 0;
  while (std::getline(in, line)) {
    INFO(line);
    std::istringstream ls(line);
    std::string tag;
    ls >> tag;
    if (tag == "alignment") {
      uint64_t v;
      ls >> v;
      CHECK(f->alignment() == v);
    } else if (tag == "data_offset") {
      uint64_t v;
      ls >> v;
      CHECK(f->data_offset() == v);
    } else if (tag == "kv_count") {
      ls >> kv_count;
    } else if (tag == "tensor_count") {
      ls >> tensor_count;
    } else if (tag == "kv") {
      std::string key, elem, count, values;
      int type;
      ls >> key >> type >> elem >> count >> values;
      REQUIRE(kv_index < f->metadata().size());
      CHECK(f->metadata()[kv_index++].key == key);  // same order
      REQUIRE(f->type_of(key) == ValueType(type));
      if (type == int(ValueType::ARRAY)) {
        const int elem_type = std::stoi(elem);
        const uint64_t n = std::stoull(count);
        CHECK(f->array_length(key) == n);
        const std::vector<std::string> parts =
            n == 0 ? std::vector<std::string>{} : split(values == "-" ? "" : values, ',');
        REQUIRE(parts.size() == n);
        if (elem_type == int(ValueType::STRING)) {
          const auto got = f->get_string_array(key).value();
          for (size_t i = 0; i < n; ++i) CHECK(got[i] == unhex(parts[i]));
        } else if (is_int_type(elem_type)) {
          const auto got = f->get_int_array(key).value();
          for (size_t i = 0; i < n; ++i) CHECK(got[i] == std::stoll(parts[i]));
        } else {
          const auto got = f->get_float_array(key).value();
          for (size_t i = 0; i < n; ++i) CHECK(got[i] == std::strtod(parts[i].c_str(), nullptr));
        }
      } else if (type == int(ValueType::STRING)) {
        CHECK(f->get_string(key).value() == unhex(values == "-" ? "" : values));
      } else if (type == int(ValueType::BOOL)) {
        CHECK(f->get_bool(key).value() == (values == "1"));
      } else if (is_int_type(type)) {
        CHECK(f->get_int(key).value() == std::stoll(values));
      } else {
        CHECK(f->get_float(key).value() == std::strtod(values.c_str(), nullptr));
      }
    } else if (tag == "tensor") {
      std::string name;
      uint32_t type, n_dims;
      ls >> name >> type >> n_dims;
      REQUIRE(tensor_index < f->tensors().size());
      const auto& t = f->tensors()[tensor_index++];
      CHECK(t.name == name);
      CHECK(t.type == type);
      CHECK(t.n_dims == n_dims);
      for (uint32_t d = 0; d < n_dims; ++d) {
        uint64_t ne;
        ls >> ne;
        CHECK(t.ne[d] == ne);
      }
      uint64_t abs_offset, nbytes;
      ls >> abs_offset >> nbytes;
      CHECK(t.file_offset == abs_offset);
      CHECK(t.nbytes == nbytes);
      uint64_t byte_sum = 0, want_sum = 0;
      ls >> want_sum;
      for (uint64_t i = 0; i < t.nbytes; ++i) byte_sum += t.data[i];
      CHECK(byte_sum == want_sum);
      CHECK(want_sum > 0);
    }
  }
  CHECK(kv_count > 10);
  CHECK(tensor_count == 4);
  CHECK(kv_index == kv_count);
  CHECK(f->metadata().size() == kv_count);
  CHECK(tensor_index == tensor_count);
  CHECK(f->tensors().size() == tensor_count);
  CHECK(f->get_string("tokenizer.ggml.model") == std::string_view("gpt2"));

  std::filesystem::remove(gguf_path);
  std::filesystem::remove(manifest_path);
}
