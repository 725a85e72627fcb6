// The stage files of a trace directory: from its manifest when it has one, otherwise from the
// plain APRT tree (DIR/layer-N/<stage>.bin and DIR/<stage>.bin, as aprender writes it).
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "trace/manifest.hpp"

namespace apr::trace {

struct TraceFile {
  uint32_t layer = APR_LAYER_NONE;
  apr_stage stage = 0;
  std::filesystem::path path;
};

struct TraceDirectory {
  std::filesystem::path dir;
  std::optional<Manifest> manifest;
  std::vector<TraceFile> files;  // in forward order
};

// Throws apr::Error when `dir` is not a directory or its manifest is malformed. Files the
// manifest lists but that are missing are left out (they count as unmeasured).
TraceDirectory list_trace_directory(const std::filesystem::path& dir);

}  // namespace apr::trace
