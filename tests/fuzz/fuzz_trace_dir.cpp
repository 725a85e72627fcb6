// SPDX-License-Identifier: MIT
// The trace-directory reader: the input is unpacked into a small directory tree, which is then
// listed (manifest or plain APRT tree, decode steps included), every listed file read, and the
// directory compared with itself as `apr diff` would; the same tree is also read as a kernel case
// directory (`apr plugin-check --case`).
//
// Input format (text-friendly, so seeds are readable and mutations keep structure):
//   --- manifest.json\n<bytes>\n--- layer-0/attn_norm.bin\n<bytes>...
// Each "--- NAME\n" line starts a file; its content runs to the next "\n--- " or the end. NAMEs
// are relative, made of [A-Za-z0-9._-/], without "..", at most 4 levels and 64 files; other
// names are dropped, so nothing is written outside the scratch directory.
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "fuzz_support.hpp"
#include "trace_compare/trace_compare.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/trace_dir.hpp"
#include "trace_isolate/case_files.hpp"

namespace {

namespace fs = std::filesystem;

bool safe_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '/' || name.back() == '/') return false;
  int depth = 0;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '/';
    if (!ok) return false;
    depth += c == '/';
  }
  return depth < 4 && name.find("..") == std::string_view::npos &&
         name.find("//") == std::string_view::npos;
}

void unpack(std::string_view input, const fs::path& root) {
  constexpr std::string_view kMarker = "--- ";
  size_t pos = input.rfind(kMarker, 0) == 0 ? 0 : input.find("\n--- ");
  int files = 0;
  while (pos != std::string_view::npos && files < 64) {
    if (input[pos] == '\n') ++pos;
    const size_t name_begin = pos + kMarker.size();
    const size_t name_end = input.find('\n', name_begin);
    if (name_end == std::string_view::npos) break;
    const std::string_view name = input.substr(name_begin, name_end - name_begin);
    const size_t next = input.find("\n--- ", name_end);
    const std::string_view body =
        input.substr(name_end + 1,
                     next == std::string_view::npos ? std::string_view::npos : next - name_end - 1);
    if (safe_name(name)) {
      const fs::path p = root / std::string(name);
      std::error_code ec;
      fs::create_directories(p.parent_path(), ec);
      if (!ec && !fs::is_directory(p, ec)) {
        apr::fuzz::write_file(p, reinterpret_cast<const uint8_t*>(body.data()), body.size());
        ++files;
      }
    }
    pos = next;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto root = apr::fuzz::scratch_path("trace-dir");
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root);
  unpack(std::string_view(reinterpret_cast<const char*>(data), size), root);
  try {
    const auto dir = apr::trace::list_trace_directory(root);
    for (const auto& f : dir.files) {
      try {
        (void)apr::trace::read_aprt(f.path);
      } catch (const apr::Error&) {
      }
    }
    const auto cmp = apr::trace::compare_directories(dir, dir, 0.999);
    (void)apr::trace::comparison_list_text(cmp);
    (void)apr::trace::comparison_grid_text(cmp);
    (void)apr::trace::divergence_summary(cmp);
    (void)apr::trace::comparison_json(cmp, "apr-trace-diff-v1", {});
  } catch (const apr::Error&) {
  }
  try {
    (void)apr::isolate::read_case(root);
  } catch (const apr::Error&) {
  }
  return 0;
}
