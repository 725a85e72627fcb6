// SPDX-License-Identifier: MIT
// The stage files of a trace directory: from its manifest when it has one, otherwise from the
// plain APRT tree (DIR/layer-N/<stage>.bin and DIR/<stage>.bin, as aprender writes it, and the
// same under DIR/step-K/ for decode step K).
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "trace_format/manifest.hpp"

namespace apr::trace {

struct TraceFile {
  uint32_t step = 0;
  uint32_t layer = APR_LAYER_NONE;
  apr_stage stage = 0;
  std::filesystem::path path;
};

struct TraceDirectory {
  std::filesystem::path dir;
  std::optional<Manifest> manifest;
  std::vector<TraceFile> files;    // present, in forward order (step by step)
  std::vector<TraceFile> missing;  // listed in the manifest but absent (count as unmeasured)
};

// Throws apr::Error when `dir` is not a directory, its manifest is malformed, or a file the
// manifest lists disagrees with it (layer, element count, size, not a regular file). Without a
// manifest the plain tree is scanned (see above).
TraceDirectory list_trace_directory(const std::filesystem::path& dir);

}  // namespace apr::trace
