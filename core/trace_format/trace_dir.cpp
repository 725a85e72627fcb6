// SPDX-License-Identifier: MIT
#include "trace_format/trace_dir.hpp"

#include <algorithm>
#include <charconv>
#include <string>

#include "common/error.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/stages.hpp"

namespace apr::trace {

namespace {

namespace fs = std::filesystem;

// N of "<prefix>N" (decimal, below APR_LAYER_NONE), or nothing.
std::optional<uint32_t> number_after(std::string_view prefix, const std::string& name) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return {};
  uint32_t n = 0;
  const char* begin = name.data() + prefix.size();
  const char* end = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(begin, end, n);
  if (ec != std::errc() || ptr != end || n == APR_LAYER_NONE) return {};
  return n;
}

std::optional<apr_stage> stage_of_file(const fs::path& p) {
  if (p.extension() != ".bin") return {};
  return stage_from_name(p.stem().string());
}

// The files of one step's tree (`dir` is the trace directory for step 0, DIR/step-K/ else).
void scan_step(TraceDirectory& t, const fs::path& dir, uint32_t step) {
  std::error_code ec;
  // Per-entry failures (a dangling link) only skip that entry; failing to list is an error.
  std::error_code skip;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file(skip)) {
      if (auto s = stage_of_file(entry.path()); s && is_whole_model_stage(*s))
        t.files.push_back({step, APR_LAYER_NONE, *s, entry.path()});
    } else if (entry.is_directory(skip)) {
      if (const auto k = number_after("step-", name); k && step == 0 && *k > 0) {
        scan_step(t, entry.path(), *k);
        continue;
      }
      const auto layer = number_after("layer-", name);
      if (!layer) continue;
      for (const auto& f : fs::directory_iterator(entry.path(), ec)) {
        if (!f.is_regular_file(skip)) continue;
        if (auto s = stage_of_file(f.path()); s && stage_exists_in_layer(*s, *layer))
          t.files.push_back({step, *layer, *s, f.path()});
      }
      if (ec) break;
    }
  }
  if (ec) throw Error("cannot list trace directory " + dir.string() + ": " + ec.message());
}

}  // namespace

TraceDirectory list_trace_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir.string() + ": not a trace directory");
  TraceDirectory t;
  t.dir = dir;
  const fs::path manifest = dir / kManifestFileName;
  if (fs::exists(fs::symlink_status(manifest, ec))) {
    t.manifest = read_manifest(manifest);
    for (size_t i = 0; i < t.manifest->files.size(); ++i) {
      const ManifestFile& f = t.manifest->files[i];
      fs::path p = dir / f.path;
      if (!fs::exists(fs::symlink_status(p, ec))) {
        t.missing.push_back({f.step, f.layer, f.stage, p});
        continue;
      }
      // Only the header is read here: it must agree with what the manifest says about it.
      const AprtHeader h = read_aprt_header(p);
      const std::string field =
          manifest.string() + ": files[" + std::to_string(i) + "] (" + f.path + ")";
      auto layer_text = [](uint32_t l) {
        return l == APR_LAYER_NONE ? std::string("null") : std::to_string(l);
      };
      if (h.layer != f.layer)
        throw Error(field + ": layer " + layer_text(f.layer) + " but the file's header says " +
                    layer_text(h.layer));
      if (h.count != element_count(f))
        throw Error(field + ": shape holds " + std::to_string(element_count(f)) +
                    " elements but the file has " + std::to_string(h.count));
      t.files.push_back({f.step, f.layer, f.stage, p});
    }
  } else {
    scan_step(t, dir, 0);
  }
  auto order = [](const TraceFile& f) { return std::pair(f.step, forward_rank(f.layer, f.stage)); };
  std::sort(t.files.begin(), t.files.end(),
            [&](const TraceFile& a, const TraceFile& b) { return order(a) < order(b); });
  // A manifest could list one stage twice; the first entry wins.
  t.files.erase(
      std::unique(t.files.begin(), t.files.end(),
                  [&](const TraceFile& a, const TraceFile& b) { return order(a) == order(b); }),
      t.files.end());
  return t;
}

}  // namespace apr::trace
