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

std::optional<uint32_t> layer_of_directory(const std::string& name) {
  constexpr std::string_view prefix = "layer-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return {};
  uint32_t layer = 0;
  const char* begin = name.data() + prefix.size();
  const char* end = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(begin, end, layer);
  if (ec != std::errc() || ptr != end || layer == APR_LAYER_NONE) return {};
  return layer;
}

std::optional<apr_stage> stage_of_file(const fs::path& p) {
  if (p.extension() != ".bin") return {};
  return stage_from_name(p.stem().string());
}

void scan_tree(TraceDirectory& t) {
  std::error_code ec;
  // Per-entry failures (a dangling link) only skip that entry; failing to list is an error.
  std::error_code skip;
  for (const auto& entry : fs::directory_iterator(t.dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file(skip)) {
      if (auto s = stage_of_file(entry.path()); s && is_whole_model_stage(*s))
        t.files.push_back({APR_LAYER_NONE, *s, entry.path()});
    } else if (entry.is_directory(skip)) {
      const auto layer = layer_of_directory(name);
      if (!layer) continue;
      for (const auto& f : fs::directory_iterator(entry.path(), ec)) {
        if (!f.is_regular_file(skip)) continue;
        if (auto s = stage_of_file(f.path()); s && stage_exists_in_layer(*s, *layer))
          t.files.push_back({*layer, *s, f.path()});
      }
      if (ec) break;
    }
  }
  if (ec) throw Error("cannot list trace directory " + t.dir.string() + ": " + ec.message());
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
        t.missing.push_back({f.layer, f.stage, p});
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
      t.files.push_back({f.layer, f.stage, p});
    }
  } else {
    scan_tree(t);
  }
  std::sort(t.files.begin(), t.files.end(), [](const TraceFile& a, const TraceFile& b) {
    return forward_rank(a.layer, a.stage) < forward_rank(b.layer, b.stage);
  });
  // A manifest could list one stage twice; the first entry wins.
  t.files.erase(std::unique(t.files.begin(), t.files.end(),
                            [](const TraceFile& a, const TraceFile& b) {
                              return a.layer == b.layer && a.stage == b.stage;
                            }),
                t.files.end());
  return t;
}

}  // namespace apr::trace
